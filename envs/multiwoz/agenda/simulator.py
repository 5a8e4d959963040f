"""The agenda user itself: ``start(goal_raw, rng)``, then ``respond(system_acts)`` each turn.

Each turn groups the system's acts, maps them to goal slots and canonical values, lets the reactions edit the
agenda and the goal (failures first), plans the next open task, and pops the agenda into user acts.
"""

from __future__ import annotations

import logging
import random
from collections.abc import Mapping, Sequence
from types import MappingProxyType
from typing import TYPE_CHECKING, Any

from envs.acts import Act, ActLike, check_system_act
from envs.multiwoz.agenda.reactions import BOOKING_REACTIONS, DOMAIN_REACTIONS
from envs.multiwoz.agenda.stack import Agenda, Item
from envs.multiwoz.agenda.user_goal import MAX_TURN, GoalScoredUser, UserGoal
from envs.multiwoz.agenda.values import NONE, UNKNOWN, ValueNormalizer
from envs.multiwoz.ontology import SYSTEM_SLOT_TO_GOAL_SLOT, USER_ACT_SLOT

if TYPE_CHECKING:
    from envs.multiwoz.data import MultiWozData

logger = logging.getLogger(__name__)

MAX_INITIATIVE = 4  # most acts popped at once when the system asked for nothing specific
NO_CHOICE_WORDS = frozenset({"0", "zero"})  # "Choice 0" from the system means no offer
TRACKED_DOMAINS = frozenset(
    {"attraction", "hotel", "restaurant", "taxi", "train"}
)  # user acts move the focus


def _user_act_table() -> dict[str, tuple[str, Mapping[str, str]]]:
    return {domain.lower(): (domain, slots) for domain, slots in USER_ACT_SLOT.items()}


USER_DOMAIN_SLOTS = MappingProxyType(_user_act_table())
SPECIAL_USER_PAIRS = frozenset({(NONE, NONE), ("choice", "any"), ("NotBook", NONE)})
SPECIAL_USER_SLOT_NAMES = MappingProxyType({"none": "none", "choice": "Choice", "NotBook": "NotBook"})


class UserSimulator(GoalScoredUser):
    """ConvLab-2's agenda user: ``start(goal_raw, rng)``, then ``respond(system_acts)`` each turn.

    ``rng`` is kept and drawn from by every later turn; assign ``simulator.rng`` to move it (replays do).
    """

    def __init__(self, value_set: Mapping[str, Mapping[str, Sequence[str]]]):
        self.normalize = ValueNormalizer(value_set)
        self.goal: UserGoal | None = None
        self.agenda: Agenda | None = None
        self._turn = 0

    @classmethod
    def from_data(cls, data: MultiWozData) -> UserSimulator:
        return cls(data.value_set)

    # -- session ------------------------------------------------------------------------------------------------

    def start(self, goal_raw: Mapping[str, Any], rng: random.Random) -> None:
        """New session: the goal (``goal_raw`` is not modified) and its agenda, drawing from ``rng``."""
        self._turn = 0
        self.goal = UserGoal(goal_raw)
        self.agenda = Agenda(self.goal, rng)

    @property
    def rng(self) -> random.Random:
        return self._session.rng

    @rng.setter
    def rng(self, rng: random.Random) -> None:
        self._session.rng = rng

    @property
    def _session(self) -> Agenda:
        if self.agenda is None:
            raise RuntimeError("no session: call start(goal_raw, rng) first")
        return self.agenda

    @property
    def _goal(self) -> UserGoal:
        if self.goal is None:
            raise RuntimeError("no session: call start(goal_raw, rng) first")
        return self.goal

    def respond(self, sys_acts: Sequence[ActLike]) -> list[Act]:
        """The user's acts ``[intent, domain, slot, value]`` in reply to the system's acts."""
        agenda = self._session
        if not agenda.stack:
            raise RuntimeError("the user has ended this session; call start() for a new one")
        for act in sys_acts:
            check_system_act(act)
        grouped = self._group(sys_acts)
        self._turn += 2
        if self._turn > MAX_TURN:
            agenda.close()
        else:
            self._update(self._to_goal_slots(grouped))
            if self._goal.complete():
                agenda.close()
        while True:
            popped = agenda.pop(MAX_INITIATIVE)
            diaact = popped[0][0]
            domain = diaact.split("-")[0]
            if domain in TRACKED_DOMAINS:
                agenda.current_domain = domain
            acts = self._user_acts(diaact, popped)
            if acts:
                return acts

    @property
    def terminated(self) -> bool:
        return not self._session.stack

    @property
    def domains(self) -> list[str]:
        return [] if self.goal is None else list(self.goal.domains)

    def agenda_items(self) -> list[list[str]]:
        """Pending acts bottom to top, ``[diaact, slot, value]`` (the top is said next)."""
        return self._session.items()

    # -- one turn -----------------------------------------------------------------------------------------------

    @staticmethod
    def _group(sys_acts: Sequence[ActLike]) -> dict[str, list[list[str]]]:
        """``{"Domain-Intent": [[slot, value], ...]}`` in first-seen order; "Choice 0" becomes a no-offer."""
        grouped: dict[str, list[list[str]]] = {}
        for intent, domain, slot, value in sys_acts:
            if slot == "Choice" and value.strip().lower() in NO_CHOICE_WORDS:
                grouped.setdefault(f"{domain}-NoOffer", []).append([NONE, NONE])
            else:
                grouped.setdefault(f"{domain}-{intent}", []).append([slot, value])
        return grouped

    def _to_goal_slots(self, grouped: dict[str, list[list[str]]]) -> dict[str, list[list[str]]]:
        """Lower-case keys; domain acts get goal slot names and canonical values, unknown slots dropped."""
        converted: dict[str, list[list[str]]] = {}
        for key, pairs in grouped.items():
            lowered = key.lower()
            if "general" in key:
                converted[lowered] = pairs
                continue
            domain, _, intent = lowered.partition("-")
            slot_names = SYSTEM_SLOT_TO_GOAL_SLOT.get(domain)
            if slot_names is None or "-" in intent:
                logger.debug("system act %s: unknown domain; ignored", key)
                continue
            mapped = []
            for slot, value in pairs:
                goal_slot = slot_names.get(slot.lower())
                if goal_slot is None:
                    logger.debug("system act %s: slot %r unknown; ignored", key, slot)
                    continue
                mapped.append([goal_slot, self.normalize(domain, intent, goal_slot, value)])
            if mapped:
                converted[lowered] = mapped
        return converted

    def _update(self, sys_action: dict[str, list[list[str]]]) -> None:
        """Edit goal and agenda for one system turn: failures first, then the rest, then the next open task."""
        agenda, goal = self._session, self._goal
        agenda.pushed = 0
        for key in sys_action:
            domain = key.partition("-")[0]
            if domain in goal.domain_set:
                agenda.current_domain = domain
        for key, pairs in sys_action.items():
            if "nooffer" in key:
                if self._react(key, pairs, by_booking=False):
                    return
            elif "nobook" in key and self._react(key, pairs, by_booking=True):
                return
        for key, pairs in sys_action.items():
            if "nooffer" in key or "nobook" in key or ("general" in key and "booking" not in key):
                continue
            self._react(key, pairs, by_booking="booking" in key)
        for key, pairs in sys_action.items():
            if "inform" in key or "recommend" in key:
                for pair in pairs:
                    if pair[0] == "name":  # an entity was named: no need to ask for "any" of the choices
                        agenda.remove(key.partition("-")[0] + "-inform", "choice")
            # A booking offered for a domain the user books nothing in is declined. (ConvLab-2 meant to decline
            # "<Domain>-OfferBook" too, but compared against a lower-cased key, so it never did; nor do we.)
            if (
                "booking" in key
                and agenda.current_domain
                and not goal.domain_goals[agenda.current_domain].get("book")
            ):
                agenda.push_item(f"{agenda.current_domain}-inform", "NotBook", NONE)
        self._plan_next(agenda, goal)

    def _react(self, key: str, pairs: list, by_booking: bool) -> bool:
        agenda, goal = self._session, self._goal
        source, _, intent = key.partition("-")
        domain = agenda.current_domain if by_booking else source
        if domain is None or domain not in goal.domain_set:
            return False
        reaction = (BOOKING_REACTIONS if by_booking else DOMAIN_REACTIONS).get(intent)
        if reaction is None:
            logger.debug("system act %s: no user reaction to intent %r", key, intent)
            return False
        return reaction(agenda, goal, domain, intent, pairs)

    @staticmethod
    def _plan_next(agenda: Agenda, goal: UserGoal) -> None:
        """With nothing pending for the first open task, ask for its missing slots or give its booking details."""
        task = goal.next_incomplete()
        if task is None:
            return
        domain, kind, data = task
        if agenda.has_constraint(domain):
            return
        if kind == "reqt" and not agenda.has_request(domain):
            for slot in data:
                agenda.push_item(f"{domain}-request", slot, UNKNOWN)
        elif kind == "book" and not agenda.has_booking_detail(domain):
            for slot, value in data.items():
                agenda.push_item(f"{domain}-inform", slot, value)

    @staticmethod
    def _user_acts(diaact: str, popped: list[Item]) -> list[Act]:
        """Agenda items -> user acts; items without a user act slot are dropped."""
        domain, _, intent = diaact.partition("-")
        if "general" in diaact:
            return [[intent, domain, item[1], item[2]] for item in popped]
        act_domain, slot_names = USER_DOMAIN_SLOTS[domain]
        act_intent = intent.capitalize()
        acts = []
        for _, slot, value in popped:
            if (slot, value) in SPECIAL_USER_PAIRS:
                acts.append([act_intent, act_domain, SPECIAL_USER_SLOT_NAMES[slot], value])
            elif slot in slot_names:
                acts.append([act_intent, act_domain, slot_names[slot], value])
        return acts
