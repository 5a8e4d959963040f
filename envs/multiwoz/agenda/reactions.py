"""The user's reaction to each system intent: edits of the agenda and the goal for one group of system acts.

A reaction is ``handler(agenda, goal, domain, intent, [[goal_slot, value], ...]) -> session closed``. Acts about a
domain (``Restaurant-Inform``) go through ``DOMAIN_REACTIONS``, ``Booking-*`` acts through ``BOOKING_REACTIONS``.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Mapping
from types import MappingProxyType
from typing import Any, cast

from envs.multiwoz.agenda.stack import Agenda
from envs.multiwoz.agenda.user_goal import UserGoal
from envs.multiwoz.agenda.values import BOOKED, DONT_CARE, NONE, NOT_SURE_VALUES

logger = logging.getLogger(__name__)

SINGLE_CHOICE_WORDS = frozenset({"0", "zero", "1", "one"})  # more than this: the user answers "any"
PLACE_DOMAINS = ("attraction", "hotel", "restaurant", "police", "hospital")  # where a taxi can go
TIME_SLOT_BY_DOMAIN = MappingProxyType(
    {"train": "duration", "restaurant": "time"}
)  # what a system "time" means
EMPTY: Mapping[str, Any] = MappingProxyType({})
NOT_IN_GOAL = object()  # sentinel: the goal has no value for a slot


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
    return (
        parts.get("reqt", EMPTY),
        parts.get("info", EMPTY),
        parts.get("fail_info", EMPTY),
        parts.get("book", EMPTY),
        parts.get("fail_book", EMPTY),
    )


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
                cast(dict[str, Any], reqt)[slot] = _quoted(value)  # holding slot: the goal's own dict
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


def _retry_with_real(agenda: Agenda, parts: dict, domain: str, part: str) -> bool:
    """Replace the failing ``fail_<part>`` details the user tried first by the real ``<part>`` ones (only the
    slots that differ are said again) and mark them used; False when there were none to try."""
    failing = parts.get(f"fail_{part}")
    if not failing:
        return False
    for slot, value in parts.get(part, EMPTY).items():
        if failing.get(slot, NOT_IN_GOAL) != value:
            agenda.push_item(f"{domain}-inform", slot, value)
    parts[f"fail_{part}_fail"] = parts.pop(f"fail_{part}")
    return True


def react_no_offer(agenda: Agenda, goal: UserGoal, domain: str, intent: str, pairs: list) -> bool:
    """No match: drop the failing constraints for the real ones, or give up when nothing else is left to try."""
    parts = goal.domain_goals[domain]
    if _retry_with_real(agenda, parts, domain, "info"):
        return False
    if parts.get("reqt"):
        agenda.close()
        return True
    return False


def react_no_book(agenda: Agenda, goal: UserGoal, domain: str, intent: str, pairs: list) -> bool:
    """Booking failed: switch from the failing booking details to the real ones, or give up."""
    parts = goal.domain_goals[domain]
    if _retry_with_real(agenda, parts, domain, "book"):
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
            cast(dict[str, Any], reqt)[slot] = value  # holding slot: the goal's own dict
    return False


Reaction = Callable[[Agenda, UserGoal, str, str, list], bool]

# Acts about a domain ("Restaurant-Inform") apply to that domain; ``Booking-*`` acts to the current domain.
# General acts (bye, greet, reqmore, welcome, ...) and unknown intents change nothing.
DOMAIN_REACTIONS: Mapping[str, Reaction] = MappingProxyType(
    {
        "inform": react_inform,
        "recommend": react_inform,
        "offerbook": react_inform,
        "offerbooked": react_inform,
        "request": react_request,
        "nooffer": react_no_offer,
        "select": react_select,
    }
)
BOOKING_REACTIONS: Mapping[str, Reaction] = MappingProxyType(
    {
        "book": react_inform,
        "inform": react_inform,
        "nobook": react_no_book,
        "request": react_request,
    }
)
