"""Watch the agenda user talk to a system: ``python -m envs.multiwoz.demo --seed 3``.

Samples a goal as ConvLab-2 would for the seed, then runs one dialogue at the dialogue-act level against a
system from ``POLICIES`` (by default a small scripted one that looks entities up in the database, answers the
user's requests and books), printing every act on its own line.
"""

from __future__ import annotations

import argparse
import random
import sys
from collections.abc import Callable, Mapping, Sequence
from typing import Any, Protocol

import numpy as np

from envs.multiwoz import data as mw_data
from envs.multiwoz.agenda import UserSimulator
from envs.multiwoz.db import Database
from envs.multiwoz.goal import GoalGenerator
from envs.multiwoz.ontology import NO_CONSTRAINT_VALUES, SYSTEM_ACT_SLOT, USER_ACT_SLOT

Act = list[str]
BOOK_SLOTS = frozenset({"people", "day", "stay", "time"})
ENTITY_DOMAINS = ("attraction", "hotel", "restaurant", "train")
NAME_SLOT = {"train": ("Id", "trainID")}  # how the system names an entity, when not by "Name"


class SystemPolicy(Protocol):
    """What the demo needs from a system: a fresh start, then acts in reply to the user's acts."""

    def reset(self) -> None: ...

    def act(self, user_acts: Sequence[Act], rng: random.Random) -> list[Act]: ...


class ScriptedSystem:
    """A deliberately simple system: remembers the user's constraints, offers the first database match,
    informs whatever the user requests about it, books when given booking details, and says bye back."""

    def __init__(self, db: Database):
        self.db = db
        self.goal_slot = {domain.lower(): {act: slot for slot, act in slots.items()}
                          for domain, slots in USER_ACT_SLOT.items()}
        self.reset()

    def reset(self) -> None:
        self.constraints: dict[str, dict[str, str]] = {}
        self.booking: dict[str, dict[str, str]] = {}
        self.taxi: Mapping[str, str] | None = None

    def act(self, user_acts: Sequence[Act], rng: random.Random) -> list[Act]:
        requested: list[str] = []
        domain = None
        for intent, act_domain, slot, value in user_acts:
            if act_domain == "general":
                if intent == "bye":
                    return [["bye", "general", "none", "none"]]
                continue
            domain = act_domain.lower()
            goal_slot = self.goal_slot.get(domain, {}).get(slot)
            if intent == "Request":
                requested.append(slot)
            elif intent == "Inform" and goal_slot is not None:
                target = self.booking if goal_slot in BOOK_SLOTS and domain != "taxi" else self.constraints
                target.setdefault(domain, {})[goal_slot] = self._resolve(goal_slot, value)
        if domain is None:
            return [["reqmore", "general", "none", "none"]]
        if domain == "taxi":
            return self._taxi(requested, rng)
        found = self.db.query(domain, self._search_constraints(domain))
        if not found:
            return [["NoOffer", domain.capitalize(), "none", "none"]]
        return self._about(domain, found[0], requested)

    def _resolve(self, slot: str, value: str) -> str:
        """The user's "same area as the hotel" / "the same day": the value it said for another domain."""
        if "same" not in value:
            return value
        for remembered in (self.constraints, self.booking):
            for known in remembered.values():
                if "same" not in known.get(slot, "same"):
                    return known[slot]
        return value

    def _search_constraints(self, domain: str) -> list[tuple[str, str]]:
        return [(slot, value) for slot, value in self.constraints.get(domain, {}).items()
                if value not in NO_CONSTRAINT_VALUES]

    def _about(self, domain: str, entity: Mapping[str, Any], requested: Sequence[str]) -> list[Act]:
        act_domain = domain.capitalize()
        fields = SYSTEM_ACT_SLOT[act_domain]
        acts = [["Inform", act_domain, slot, str(entity.get(fields.get(slot) or "", "none"))] for slot in requested]
        if domain in self.booking and domain in ENTITY_DOMAINS:
            acts.append(["Book", "Booking", "Ref", str(entity.get("Ref", "none"))])
            del self.booking[domain]
        if not acts:
            slot, field = NAME_SLOT.get(domain, ("Name", "name"))
            acts.append(["Inform", act_domain, slot, str(entity.get(field, "none"))])
        return acts

    def _taxi(self, requested: Sequence[str], rng: random.Random) -> list[Act]:
        if self.taxi is None:
            self.taxi = self.db.taxi(rng)
        car = f"{self.taxi['taxi_colors']} {self.taxi['taxi_types']}"
        return [["Inform", "Taxi", "Car", car], ["Inform", "Taxi", "Phone", self.taxi["taxi_phone"]]]


POLICIES: dict[str, Callable[[mw_data.MultiWozData, Database], SystemPolicy]] = {
    "scripted": lambda data, db: ScriptedSystem(db),
}


def format_act(act: Sequence[str]) -> str:
    intent, domain, slot, value = act
    return f"{intent}({domain}" + ("" if slot == "none" else f", {slot}={value}") + ")"


def format_goal(goal: Mapping[str, Any], ordering: Sequence[str]) -> list[str]:
    lines = []
    for domain in ordering:
        lines.append(f"  {domain}")
        for part, content in goal[domain].items():
            if isinstance(content, dict):
                content = ", ".join(f"{slot}={value}" for slot, value in content.items())
            lines.append(f"    {part:<14} {content}")
    return lines


def run_dialogue(seed: int, policy: str = "scripted", data_dir: str | None = None) -> list[str]:
    """One seeded dialogue as printable lines."""
    data = mw_data.load(data_dir)
    db = Database.from_data(data)
    rng = random.Random(seed)
    goal_raw = GoalGenerator.from_data(data, db).sample(rng, np.random.RandomState(seed))
    user = UserSimulator.from_data(data)
    user.start(goal_raw, rng)
    system = POLICIES[policy](data, db)
    system.reset()
    lines = [f"seed {seed}: goal (domains in order {', '.join(user.domains)})"]
    lines += format_goal(user.domain_goals, user.domains)
    sys_acts: list[Act] = []
    round_index = 0
    while not user.terminated:
        user_acts = user.respond(sys_acts)
        lines.append(f"round {round_index}")
        lines += [f"  user   {format_act(act)}" for act in user_acts]
        if user.terminated:
            break
        sys_acts = system.act(user_acts, rng)
        lines += [f"  system {format_act(act)}" for act in sys_acts]
        round_index += 1
    outcome = "complete" if user.goal_complete else "incomplete"
    lines.append(f"end after {round_index + 1} rounds: goal {outcome}, user reward {user.reward:+.0f}")
    lines.append("final goal:")
    lines += format_goal(user.domain_goals, user.domains)
    return lines


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m envs.multiwoz.demo", description=__doc__.splitlines()[0])
    parser.add_argument("--seed", type=int, default=0, help="seeds the goal, the user and the system")
    parser.add_argument("--policy", choices=sorted(POLICIES), default="scripted", help="the system to talk to")
    parser.add_argument("--data-dir", default=None, help="MultiWOZ data folder (default: resolved as usual)")
    args = parser.parse_args(argv)
    try:
        lines = run_dialogue(args.seed, args.policy, args.data_dir)
    except mw_data.DataError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    print("\n".join(lines))
    return 0


if __name__ == "__main__":
    sys.exit(main())
