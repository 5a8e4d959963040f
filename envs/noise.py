"""A noisy channel between the simulated user and the dialogue-state tracker.

``NoisyUser(user, p, data)`` wraps any ``UserSimulator`` and corrupts the acts it emits, as an imperfect NLU
would, before the DST, the vectoriser and the policy see them. The user itself is untouched: it keeps its true
goal and agenda, reacts to the system as before, and the evaluator keeps scoring that true goal
(``domain_goals``, ``terminated`` and ``reward`` pass straight through).

Each domain act of a user turn, independently:

1. is **dropped** with probability ``drop_p``;
2. otherwise has its **intent changed** with probability ``intent_p``, where the other intent exists for that
   domain-slot in the user-act vocabulary: ``Inform(slot=v)`` becomes ``Request(slot=?)``, and
   ``Request(slot=?)`` becomes ``Inform(slot=v')`` with a valid value ``v'``;
3. otherwise has its **value replaced** with probability ``value_p`` by another valid value of that
   domain-slot (an ``Inform`` only; ``dontcare`` may be replaced too; a slot with one valid value is kept).

Not corrupted: ``general`` acts (greet, thank, bye), the domain and slot of an act, the order of the surviving
acts, and anything the user does internally. Each probability defaults to ``p``, so ``p = 0`` is the identity.

Valid values of a domain-slot: ``value_set.json`` (the canonical database values), else the values the goal
model can put in a goal (day, people, stay, time and the taxi slots, which ``value_set.json`` lacks).

Randomness: the noise draws from its own ``random.Random``, seeded at ``start`` from the position of the
dialogue's stream without consuming it. A noisy dialogue therefore depends only on its seed, and the user,
goal and evaluator draw exactly what they would draw without noise.
"""

from __future__ import annotations

import array
import functools
import random
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from envs.acts import Act, ActLike
from envs.multiwoz.data import MultiWozData
from envs.multiwoz.ontology import USER_ACT_SLOT
from envs.user import UserSimulator

INTENT_FLIPS = {"Inform": "Request", "Request": "Inform"}
REQUEST_VALUE = "?"
SEED_SALT = b"vrb user noise"


@dataclass(frozen=True)
class CorruptionTables:
    """What each (Domain, act slot) may become, precomputed once per data folder."""

    # valid values of (Domain, act slot), only where there are at least two
    values: Mapping[tuple[str, str], tuple[str, ...]]
    # (intent, Domain, act slot) whose other intent is in the user-act vocabulary
    flippable: frozenset[tuple[str, str, str]]

    @classmethod
    def from_data(cls, data: MultiWozData) -> CorruptionTables:
        goal_values = data.goal_model.ind_slot_value_dist
        values: dict[tuple[str, str], tuple[str, ...]] = {}
        for domain, slots in USER_ACT_SLOT.items():
            canonical = data.value_set.get(domain.lower(), {})
            in_goals = goal_values.get(domain.lower(), {})
            for goal_slot, act_slot in slots.items():
                choices = canonical.get(goal_slot) or [
                    value
                    for section in ("info", "book")
                    for value in in_goals.get(section, {}).get(goal_slot, {})
                ]
                unique = tuple(dict.fromkeys(choices))
                if len(unique) >= 2:
                    values[domain, act_slot] = unique
        vocabulary = {tuple(entry.split("-")[:3]) for entry in data.usr_act_vocab}
        flippable = set()
        for domain, intent, slot in vocabulary:
            other = INTENT_FLIPS.get(intent)
            if (
                other
                and (domain, other, slot) in vocabulary
                and (other == "Request" or (domain, slot) in values)
            ):
                flippable.add((intent, domain, slot))
        return cls(values=values, flippable=frozenset(flippable))


@functools.lru_cache(maxsize=4)
def corruption_tables(data: MultiWozData) -> CorruptionTables:
    return CorruptionTables.from_data(data)


def _probability(name: str, value: float) -> float:
    if isinstance(value, bool) or not isinstance(value, int | float) or not 0 <= value <= 1:
        raise ValueError(f"user noise {name} = {value!r}: expected a probability in [0, 1]")
    return float(value)


class NoisyUser:
    """A ``UserSimulator`` whose emitted acts pass through a noisy channel; see the module docstring."""

    def __init__(
        self,
        user: UserSimulator,
        p: float,
        data: MultiWozData,
        *,
        drop_p: float | None = None,
        intent_p: float | None = None,
        value_p: float | None = None,
    ):
        self.user = user
        self.p = _probability("p", p)
        self.drop_p = _probability("drop_p", self.p if drop_p is None else drop_p)
        self.intent_p = _probability("intent_p", self.p if intent_p is None else intent_p)
        self.value_p = _probability("value_p", self.p if value_p is None else value_p)
        self.tables = corruption_tables(data)
        self.rng = random.Random()
        self.clean_acts: list[Act] = []  # what the user meant in its last turn

    def start(self, goal_raw: dict[str, Any], rng: random.Random) -> None:
        self.user.start(goal_raw, rng)
        position = array.array("Q", rng.getstate()[1]).tobytes()
        self.rng = random.Random(SEED_SALT + position)
        self.clean_acts = []

    def respond(self, sys_acts: Sequence[ActLike]) -> list[Act]:
        self.clean_acts = self.user.respond(sys_acts)
        if not (self.drop_p or self.intent_p or self.value_p):
            return self.clean_acts
        noisy = []
        for act in self.clean_acts:
            corrupted = self._corrupt(act)
            if corrupted is not None:
                noisy.append(corrupted)
        return noisy

    def _corrupt(self, act: Act) -> Act | None:
        intent, domain, slot, value = act
        if domain == "general":
            return act
        rng = self.rng
        if rng.random() < self.drop_p:
            return None
        if rng.random() < self.intent_p and (intent, domain, slot) in self.tables.flippable:
            if intent == "Inform":
                return ["Request", domain, slot, REQUEST_VALUE]
            return ["Inform", domain, slot, rng.choice(self.tables.values[domain, slot])]
        choices = self.tables.values.get((domain, slot)) if intent == "Inform" else None
        if choices and rng.random() < self.value_p:
            others = [choice for choice in choices if choice.lower() != value.lower()]
            return [intent, domain, slot, rng.choice(others)] if others else act
        return act

    @property
    def terminated(self) -> bool:
        return self.user.terminated

    @property
    def reward(self) -> float:
        return self.user.reward

    @property
    def domain_goals(self) -> dict[str, dict[str, Any]]:
        return self.user.domain_goals
