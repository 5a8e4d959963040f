"""The agenda-based MultiWOZ user simulator, behaving turn for turn like ConvLab-2's ``UserPolicyAgendaMultiWoz``.

The user holds a goal (per domain: constraints ``info``, requested slots ``reqt``, booking details ``book``,
and the ``fail_info`` / ``fail_book`` variants it tries first) and an *agenda*: a stack of pending user acts
``[diaact, slot, value]`` with ``general-bye`` at the bottom. Each turn it reacts to the system's acts by editing
the agenda and its goal (restating violated constraints, filling requested slots, switching from a failing
variant to the real one), then pops the top of the stack as its next acts. All randomness comes from one
injected ``random.Random``, consumed in ConvLab-2's order so recorded RNG positions replay exactly.
"""

from __future__ import annotations

import logging
import random
import re
from abc import ABC, abstractmethod
from bisect import bisect_right
from collections.abc import Callable, Mapping, Sequence
from itertools import accumulate
from types import MappingProxyType
from typing import TYPE_CHECKING, Any

from envs.multiwoz.ontology import SYSTEM_SLOT_TO_GOAL_SLOT, USER_ACT_SLOT

if TYPE_CHECKING:
    from envs.multiwoz.data import MultiWozData

logger = logging.getLogger(__name__)

UNKNOWN = "?"
DONT_CARE = "dontcare"
NONE = "none"
BOOKED = "yes"
NOT_SURE_VALUES = frozenset({UNKNOWN, DONT_CARE, NONE, "no"})  # a goal slot holding one of these is still open
BOOK_SLOTS = frozenset({"people", "day", "stay", "time"})
CLOSE_ACT = "general-bye"

MAX_TURN = 40  # ConvLab-2 counts two turns per user reply, so the user closes on its 21st reply
MAX_INITIATIVE = 4  # most acts popped at once when the system asked for nothing specific
COMPLETE_REWARD = 2.0 * MAX_TURN
FAILURE_REWARD = -1.0 * MAX_TURN
TURN_REWARD = -1.0

# A value repeated for these slots is, 30% of the time, phrased as a back-reference instead.
SAME_VALUE_PROBABILITY = 0.3
SAME_VALUE_PHRASES = MappingProxyType({
    "people": "the same",
    "day": "the same day",
    "pricerange": "in the same price range as the {domain}",
    "area": "same area as the {domain}",
})
NO_CHOICE_WORDS = frozenset({"0", "zero"})  # "Choice 0" from the system means no offer
SINGLE_CHOICE_WORDS = frozenset({"0", "zero", "1", "one"})  # more than this: the user answers "any"
PLACE_DOMAINS = ("attraction", "hotel", "restaurant", "police", "hospital")  # where a taxi can go
TRACKED_DOMAINS = frozenset({"attraction", "hotel", "restaurant", "taxi", "train"})  # user acts move the focus
TIME_SLOT_BY_DOMAIN = MappingProxyType({"train": "duration", "restaurant": "time"})  # what a system "time" means
YES_NO_SLOTS = frozenset({"parking", "internet"})  # the system's "none" for these reads as "yes"

EMPTY: Mapping[str, Any] = MappingProxyType({})
NOT_IN_GOAL = object()  # sentinel: the goal has no value for a slot
TIME_PATTERN = re.compile(r"(\d{1,2}:\d{1,2})")
NORMALIZE_MEMO_LIMIT = 100_000

Item = list  # an agenda entry: [diaact, slot, value]; mutable so a value can become a back-reference


# ---------------------------------------------------------------------------------------------------------------
# System values -> the canonical spellings of value_set.json


def _squeeze(text: str) -> str:
    return " ".join(text.split())


class CanonicalValues:
    """One slot's canonical values in sorted order, indexed to find the first that contains a text or that the
    text contains without scanning them all (the train id list has thousands)."""

    SEPARATOR = "\x00"  # never inside a value, so a search cannot match across two values

    def __init__(self, values: Sequence[str]):
        raw = sorted(set(values) | {value.lower() for value in values})
        self.raw = frozenset(raw)
        self.squeezed = tuple(_squeeze(value) for value in raw)
        self.first_index: dict[str, int] = {}
        for index, value in enumerate(self.squeezed):
            self.first_index.setdefault(value, index)
        self.lengths = sorted({len(value) for value in self.squeezed})
        self.joined = self.SEPARATOR.join(self.squeezed)
        self.starts = list(accumulate((len(value) + 1 for value in self.squeezed[:-1]), initial=0))

    def first_match(self, text: str) -> str | None:
        """First value containing, or contained in, ``text`` or ``text`` without spaces (as typed, then lower)."""
        lower = text.lower()
        for variant in (text, lower) if lower != text else (text,):
            forms = {_squeeze(variant), "".join(variant.split())}
            best = min(min(self._first_containing(form), self._first_contained_in(form)) for form in forms)
            if best < len(self.squeezed):
                return self.squeezed[best]
        return None

    def _first_containing(self, text: str) -> int:
        if self.SEPARATOR in text:
            return next((i for i, value in enumerate(self.squeezed) if text in value), len(self.squeezed))
        position = self.joined.find(text)
        return len(self.squeezed) if position < 0 else bisect_right(self.starts, position) - 1

    def _first_contained_in(self, text: str) -> int:
        best = len(self.squeezed)
        for length in self.lengths:
            if length > len(text):
                break
            for start in range(len(text) - length + 1):
                index = self.first_index.get(text[start:start + length])
                if index is not None and index < best:
                    best = index
        return best


class ValueNormalizer:
    """Maps a value the system uttered onto the canonical value set, as ConvLab-2's user reads it.

    A value already in the set stays; otherwise the first canonical value (in sorted order) that contains it or
    is contained in it, ignoring whitespace differences, then case; then the same after ``" 's"`` -> ``"'s"`` and
    ``" - "`` -> ``"-"``; otherwise the value is kept as it is.
    """

    def __init__(self, value_set: Mapping[str, Mapping[str, Sequence[str]]]):
        self._tables = {domain: {slot: CanonicalValues(values) for slot, values in slots.items()}
                        for domain, slots in value_set.items()}
        self._memo: dict[tuple[str, str, str], str] = {}

    def __call__(self, domain: str, intent: str, slot: str, value: str) -> str:
        if intent == "request":
            return UNKNOWN
        slots = self._tables.get(domain)
        if slots is None or slot not in slots:
            return value
        if slot in YES_NO_SLOTS and value == NONE:
            return BOOKED
        canonical = slots[slot]
        if value in canonical.raw:
            return value
        key = (domain, slot, value)
        found = self._memo.get(key)
        if found is None:
            found = self._closest(canonical, value)
            if len(self._memo) >= NORMALIZE_MEMO_LIMIT:
                self._memo.clear()
            self._memo[key] = found
        return found

    @staticmethod
    def _closest(canonical: CanonicalValues, value: str) -> str:
        for variant in (value, *_spelling_variants(value)):
            match = canonical.first_match(variant)
            if match is not None:
                return match
        if not TIME_PATTERN.search(value.strip()):
            logger.debug("value %r is not in the value set; kept as it is", value)
        return value


def _spelling_variants(value: str) -> list[str]:
    variants = []
    if " 's" in value:
        variants.append(value.replace(" 's", "'s"))
    if " - " in value:
        variants.append(value.replace(" - ", "-"))
    return variants


# ---------------------------------------------------------------------------------------------------------------
# The goal


class UserGoal:
    """The user's goal per domain, mutated as the system informs and books (the dict the evaluator scores)."""

    __slots__ = ("domains", "domain_set", "domain_goals")

    def __init__(self, goal_raw: Mapping[str, Any]):
        ordering = goal_raw.get("domain_ordering")
        if ordering is None or any(domain not in goal_raw for domain in ordering):
            raise ValueError(f"goal {goal_raw!r}: expected 'domain_ordering' listing domains the goal has")
        self.domains: list[str] = list(ordering)
        self.domain_set = frozenset(self.domains)
        self.domain_goals: dict[str, dict[str, Any]] = {}
        for domain, parts in goal_raw.items():
            if domain == "domain_ordering":
                continue
            goal = {}
            for key, value in parts.items():
                if key == "reqt" and domain in self.domain_set:
                    goal[key] = dict.fromkeys(value, UNKNOWN)
                else:
                    goal[key] = value.copy() if isinstance(value, dict | list) else value
            if "book" in goal and domain in self.domain_set:
                goal["booked"] = UNKNOWN
            self.domain_goals[domain] = goal

    def complete(self) -> bool:
        """Every requested slot answered and every booking made."""
        for domain in self.domains:
            goal = self.domain_goals[domain]
            if "reqt" in goal and any(value in NOT_SURE_VALUES for value in goal["reqt"].values()):
                return False
            if goal.get("booked", BOOKED) in NOT_SURE_VALUES:
                return False
        return True

    def next_incomplete(self) -> tuple[str, str, Any] | None:
        """First open task in domain order: ``(domain, "reqt", slots)`` or ``(domain, "book", details)``."""
        for domain in self.domains:
            goal = self.domain_goals[domain]
            if "reqt" in goal:
                unknown = [slot for slot, value in goal["reqt"].items() if value in NOT_SURE_VALUES]
                if unknown:
                    return domain, "reqt", ["name"] if "name" in unknown else unknown
            if goal.get("booked", BOOKED) in NOT_SURE_VALUES:
                return domain, "book", goal["fail_book"] if "fail_book" in goal else goal["book"]
        return None


# ---------------------------------------------------------------------------------------------------------------
# The agenda


def _sample_all(rng: random.Random, keys: Sequence[str]) -> list[str]:
    """A random order of ``keys``, drawn as ConvLab-2 drew it (a draw for the count, then the sample)."""
    count = rng.randint(len(keys), len(keys))
    return rng.sample(keys, count)


class Agenda:
    """The stack of pending user acts; the last item is said first."""

    __slots__ = ("stack", "pushed", "current_domain", "rng")

    def __init__(self, goal: UserGoal, rng: random.Random):
        self.stack: list[Item] = []
        self.pushed = 0  # items pushed in reaction to the current system turn
        self.current_domain: str | None = None
        self.rng = rng
        self.push(CLOSE_ACT)
        for domain in reversed(goal.domains):
            parts = goal.domain_goals[domain]
            constraints = parts["fail_info"] if "fail_info" in parts else parts.get("info")
            if constraints is not None:
                for slot in _sample_all(rng, list(constraints)):
                    self.push(f"{domain}-inform", slot, constraints[slot])
            self.push(f"{domain}-inform")

    def push(self, diaact: str, slot: str = NONE, value: str = NONE) -> None:
        phrase = SAME_VALUE_PHRASES.get(slot)
        if phrase is not None:
            for item in self.stack:
                if item[1] == slot and item[2] == value and self.rng.random() < SAME_VALUE_PROBABILITY:
                    item[2] = phrase.format(domain=diaact.split("-")[0])
        self.stack.append([diaact, slot, value])

    def push_item(self, diaact: str, slot: str = NONE, value: str = NONE) -> None:
        """Push in reaction to the system: replaces the pending act for the same slot and counts the push."""
        self.remove(diaact, slot)
        self.push(diaact, slot, value)
        self.pushed += 1

    def remove(self, diaact: str, slot: str) -> None:
        """Drop the lowest pending ``diaact`` for ``slot`` (any slot for general acts)."""
        any_slot = "general" in diaact
        for index, item in enumerate(self.stack):
            if item[0] == diaact and (any_slot or item[1] == slot):
                del self.stack[index]
                return

    def has_request(self, domain: str) -> bool:
        diaact = f"{domain}-request"
        return any(item[0] == diaact for item in self.stack)

    def has_constraint(self, domain: str) -> bool:
        """A search constraint of ``domain`` is still to be said (so answers may not be for the right entity)."""
        diaact = f"{domain}-inform"
        return any(item[0] == diaact and item[1] not in BOOK_SLOTS for item in self.stack)

    def has_booking_detail(self, domain: str) -> bool:
        diaact = f"{domain}-inform"
        return any(item[0] == diaact and item[1] in BOOK_SLOTS for item in self.stack)

    def close(self) -> None:
        self.stack = []
        self.pushed = 0
        self.push(CLOSE_ACT)

    def pop(self, initiative: int) -> list[Item]:
        """The next acts: consecutive items of the top diaact, as many as were just pushed (or ``initiative``).

        Booking details go out together (up to ten when nothing was pushed); a request for a name goes alone.
        """
        stack = self.stack
        top_act, top_slot = stack[-1][0], stack[-1][1]
        popped: list[Item] = []
        if top_act.endswith("-inform") and top_slot in BOOK_SLOTS:
            for _ in range(self.pushed or 10):
                item = stack.pop()
                popped.append(item)
                if not stack:
                    break
                following = stack[-1]
                if following[0] != item[0] or following[1] not in BOOK_SLOTS:
                    break
            return popped
        pushed = self.pushed
        only_dont_care = all(stack[-i - 1][2] == DONT_CARE for i in range(min(len(stack), pushed)))
        for _ in range(initiative if pushed == 0 or only_dont_care else pushed):
            item = stack.pop()
            popped.append(item)
            if not stack or stack[-1][0] != item[0] or (item[0].endswith("-request") and item[1] == "name"):
                break
        return popped

    def items(self) -> list[list[str]]:
        return [list(item) for item in self.stack]


# ---------------------------------------------------------------------------------------------------------------
# Reactions to system acts: handler(agenda, goal, domain, intent, [[goal_slot, value], ...]) -> session closed


def _quoted(value: str) -> str:
    """An answer that reads like "still open" is quoted, so the request counts as answered."""
    return f'"{value}"' if value in NOT_SURE_VALUES else value


def _clock(value: str) -> int:
    hours, minutes = value.split(":")[:2]
    return int(hours) * 100 + int(minutes)


def _violates(slot: str, wanted: str, offered: str) -> bool:
    """The system's value breaks the user's constraint (times compare as "no later" / "no earlier")."""
    try:
        if slot == "arriveBy":
            return _clock(wanted) < _clock(offered)
        if slot == "leaveAt":
            return _clock(wanted) > _clock(offered)
    except (ValueError, IndexError, AttributeError, TypeError):
        return False
    return wanted != offered


def _goal_sections(parts: Mapping[str, Any]) -> tuple[Mapping[str, Any], ...]:
    return (parts.get("reqt", EMPTY), parts.get("info", EMPTY), parts.get("fail_info", EMPTY),
            parts.get("book", EMPTY), parts.get("fail_book", EMPTY))


def _goal_value(slot: str, info: Mapping, fail_info: Mapping, book: Mapping, fail_book: Mapping) -> Any:
    """The value the user currently wants for ``slot`` (the failing variant while it is still being tried)."""
    if slot in fail_info:
        return fail_info[slot]
    if not fail_info and slot in info:
        return info[slot]
    if slot in fail_book:
        return fail_book[slot]
    if not fail_book and slot in book:
        return book[slot]
    return NOT_IN_GOAL


def _act_slot(domain: str, slot: str) -> str | None:
    if slot != "time":
        return slot
    mapped = TIME_SLOT_BY_DOMAIN.get(domain)
    if mapped is None:
        logger.debug("system act slot 'time' means nothing in domain %s; ignored", domain)
    return mapped


def react_inform(agenda: Agenda, goal: UserGoal, domain: str, intent: str, pairs: list) -> bool:
    """Inform / recommend / offer / book: take answers to requests, restate constraints the offer breaks."""
    parts = goal.domain_goals[domain]
    reqt, info, fail_info, book, fail_book = _goal_sections(parts)
    inform = f"{domain}-inform"
    consistent = True
    for slot, value in pairs:
        slot = _act_slot(domain, slot)
        if slot is None:
            continue
        if slot == "choice" and value.strip().lower() not in SINGLE_CHOICE_WORDS:
            agenda.push_item(inform, "choice", "any")
        if slot in reqt:
            if not agenda.has_constraint(domain):
                agenda.remove(f"{domain}-request", slot)
                reqt[slot] = _quoted(value)
            continue
        if slot in fail_info:
            if value != fail_info[slot]:
                agenda.push_item(inform, slot, fail_info[slot])
                consistent = False
                continue
        elif not fail_info and slot in info and _violates(slot, info[slot], value):
            agenda.push_item(inform, slot, info[slot])
            consistent = False
            continue
        wanted = fail_book.get(slot, NOT_IN_GOAL) if fail_book else book.get(slot, NOT_IN_GOAL)
        if wanted is not NOT_IN_GOAL and value != wanted:
            agenda.push_item(inform, slot, wanted)
            consistent = False
    if intent in ("book", "offerbooked") and consistent and "booked" in parts:
        parts["booked"] = BOOKED
    return False


def react_request(agenda: Agenda, goal: UserGoal, domain: str, intent: str, pairs: list) -> bool:
    """Answer with the goal's value; for anything the goal leaves open, "dontcare" (a taxi's ends excepted)."""
    reqt, info, fail_info, book, fail_book = _goal_sections(goal.domain_goals[domain])
    for slot, _ in pairs:
        slot = _act_slot(domain, slot)
        if slot is None or slot in reqt:
            continue
        value = _goal_value(slot, info, fail_info, book, fail_book)
        if value is NOT_IN_GOAL:
            value = _taxi_end(goal, slot) if domain == "taxi" else DONT_CARE
        agenda.push_item(f"{domain}-inform", slot, value)
    return False


def _taxi_end(goal: UserGoal, slot: str) -> str:
    """A taxi goes from the second-last place of the goal to the last one, by name when the goal names it."""
    if slot not in ("destination", "departure"):
        return DONT_CARE
    places = [domain for domain in goal.domains[: goal.domains.index("taxi")] if domain in PLACE_DOMAINS]
    needed = 1 if slot == "destination" else 2
    if len(places) < needed:
        return DONT_CARE
    place = places[-needed]
    name = goal.domain_goals[place].get("info", EMPTY).get("name", NONE)
    return name if name not in NOT_SURE_VALUES else f"the {place}"


def react_no_offer(agenda: Agenda, goal: UserGoal, domain: str, intent: str, pairs: list) -> bool:
    """No match: drop the failing constraints for the real ones, or give up when nothing else is left to try."""
    parts = goal.domain_goals[domain]
    fail_info = parts.get("fail_info")
    if fail_info:
        for slot, value in parts.get("info", EMPTY).items():
            if fail_info.get(slot, NOT_IN_GOAL) != value:
                agenda.push_item(f"{domain}-inform", slot, value)
        parts["fail_info_fail"] = parts.pop("fail_info")
        return False
    if parts.get("reqt"):
        agenda.close()
        return True
    return False


def react_no_book(agenda: Agenda, goal: UserGoal, domain: str, intent: str, pairs: list) -> bool:
    """Booking failed: switch from the failing booking details to the real ones, or give up."""
    parts = goal.domain_goals[domain]
    fail_book = parts.get("fail_book")
    if fail_book:
        for slot, value in parts.get("book", EMPTY).items():
            if fail_book.get(slot, NOT_IN_GOAL) != value:
                agenda.push_item(f"{domain}-inform", slot, value)
        parts["fail_book_fail"] = parts.pop("fail_book")
        return False
    if "booked" in parts:
        agenda.close()
        return True
    return False


def react_select(agenda: Agenda, goal: UserGoal, domain: str, intent: str, pairs: list) -> bool:
    """Choose between offered values: the goal's value for the first slot, else one of the offers at random."""
    reqt, info, fail_info, book, fail_book = _goal_sections(goal.domain_goals[domain])
    inform = f"{domain}-inform"
    for slot, value in pairs:
        if slot == "choice" and value.strip().lower() not in SINGLE_CHOICE_WORDS:
            agenda.push_item(inform, "choice", "any")
    offers = [pair for pair in pairs if pair[0] != "choice"]
    if not offers:
        return False
    wanted = _goal_value(offers[0][0], info, fail_info, book, fail_book)
    if wanted is not NOT_IN_GOAL:
        agenda.push_item(inform, offers[0][0], wanted)
    elif not agenda.has_constraint(domain):
        slot, value = agenda.rng.choice(offers)
        agenda.push_item(inform, slot, value)
        if slot in reqt:
            agenda.remove(f"{domain}-request", slot)
            reqt[slot] = value
    return False


Reaction = Callable[[Agenda, UserGoal, str, str, list], bool]

# Acts about a domain ("Restaurant-Inform") apply to that domain; ``Booking-*`` acts to the current domain.
# General acts (bye, greet, reqmore, welcome, ...) and unknown intents change nothing.
DOMAIN_REACTIONS: Mapping[str, Reaction] = MappingProxyType({
    "inform": react_inform,
    "recommend": react_inform,
    "offerbook": react_inform,
    "offerbooked": react_inform,
    "request": react_request,
    "nooffer": react_no_offer,
    "select": react_select,
})
BOOKING_REACTIONS: Mapping[str, Reaction] = MappingProxyType({
    "book": react_inform,
    "inform": react_inform,
    "nobook": react_no_book,
    "request": react_request,
})


# ---------------------------------------------------------------------------------------------------------------
# The simulator


def _user_act_table() -> dict[str, tuple[str, Mapping[str, str]]]:
    return {domain.lower(): (domain, slots) for domain, slots in USER_ACT_SLOT.items()}


USER_DOMAIN_SLOTS = MappingProxyType(_user_act_table())
SPECIAL_USER_PAIRS = frozenset({(NONE, NONE), ("choice", "any"), ("NotBook", NONE)})
SPECIAL_USER_SLOT_NAMES = MappingProxyType({"none": "none", "choice": "Choice", "NotBook": "NotBook"})


def _check_act(act: Any) -> None:
    if not (isinstance(act, list | tuple) and len(act) == 4 and all(isinstance(part, str) for part in act)):
        raise ValueError(f"system act {act!r}: expected [intent, domain, slot, value], four strings")


class GoalScoredUser(ABC):
    """What every simulated user that keeps a ``UserGoal`` shares (the agenda user and VHUS): completion, the
    +80 / −40 / −1 reward and the live goal the evaluator scores. Subclasses provide ``goal`` and ``terminated``.
    """

    goal: UserGoal | None

    @property
    @abstractmethod
    def terminated(self) -> bool:
        """The user has ended the dialogue."""

    @property
    def goal_complete(self) -> bool:
        return self.goal is not None and self.goal.complete()

    @property
    def reward(self) -> float:
        """+80 once the goal is complete, -40 when the user ended without completing it, else -1."""
        if self.goal_complete:
            return COMPLETE_REWARD
        return FAILURE_REWARD if self.terminated else TURN_REWARD

    @property
    def domain_goals(self) -> dict[str, dict[str, Any]]:
        """The live goal (mutated as the session goes on): what the evaluator scores."""
        if self.goal is None:
            raise RuntimeError("no session: call start(goal_raw, rng) first")
        return self.goal.domain_goals


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

    def respond(self, sys_acts: Sequence[Sequence[str]]) -> list[list[str]]:
        """The user's acts ``[intent, domain, slot, value]`` in reply to the system's acts."""
        agenda = self._session
        if not agenda.stack:
            raise RuntimeError("the user has ended this session; call start() for a new one")
        for act in sys_acts:
            _check_act(act)
        grouped = self._group(sys_acts)
        self._turn += 2
        if self._turn > MAX_TURN:
            agenda.close()
        else:
            self._update(self._to_goal_slots(grouped))
            if self.goal.complete():
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
    def _group(sys_acts: Sequence[Sequence[str]]) -> dict[str, list[list[str]]]:
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
        agenda, goal = self.agenda, self.goal
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
            if "booking" in key and agenda.current_domain and not goal.domain_goals[agenda.current_domain].get(
                    "book"):
                agenda.push_item(f"{agenda.current_domain}-inform", "NotBook", NONE)
        self._plan_next(agenda, goal)

    def _react(self, key: str, pairs: list, by_booking: bool) -> bool:
        source, _, intent = key.partition("-")
        domain = self.agenda.current_domain if by_booking else source
        if domain not in self.goal.domain_set:
            return False
        reaction = (BOOKING_REACTIONS if by_booking else DOMAIN_REACTIONS).get(intent)
        if reaction is None:
            logger.debug("system act %s: no user reaction to intent %r", key, intent)
            return False
        return reaction(self.agenda, self.goal, domain, intent, pairs)

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
    def _user_acts(diaact: str, popped: list[Item]) -> list[list[str]]:
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
