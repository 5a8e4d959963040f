"""ConvLab-2's rule-based MultiWOZ system policy (RuleBasedMultiwozBot), with its random draws injected.

Each user act, grouped by ``Domain-Intent`` in order of first appearance, goes to one rule: greetings, taxi
booking, train search, or search in any other domain (answer requests, report no match, inform the single
match, or recommend one of several). A user act carrying booking information books the first match. Acts are
collected as ``{(domain, intent): [[slot, value], ...]}`` whose insertion order (deletions included) is the
order of the reply, as in ConvLab-2.

ConvLab-2 behaviour kept on purpose because recorded dialogues depend on it: a booking discards every other
act (after a coin flip whose ``reqmore`` act is discarded too); a reply without any act that carries slots
(``bye`` alone included) becomes ``greet``; taxi departure/destination are never asked for; a single match
informs a random subset of the belief-state slots; recommendations read ``Ref``/``location`` and the like
through the user act spelling. The bot's recommendation bookkeeping never reaches its output and is left out;
the only memory across turns is the previous state, read when the user acts are empty.
"""

from __future__ import annotations

import random
from collections.abc import Mapping, Sequence
from typing import Any

from envs.acts import Act, ActLike
from envs.multiwoz.db import Database
from envs.multiwoz.ontology import SYSTEM_ACT_SLOT, USER_ACT_SLOT

Reply = dict[tuple[str, str], list[list[Any]]]  # (domain, intent) -> [[slot, value], ...]

# Act slots a recommendation may mention (ConvLab-2's INFORMABLE_SLOTS).
RECOMMENDABLE_SLOTS = frozenset(
    {
        "Fee",
        "Addr",
        "Area",
        "Stars",
        "Internet",
        "Department",
        "Choice",
        "Ref",
        "Food",
        "Type",
        "Price",
        "Stay",
        "Phone",
        "Post",
        "Day",
        "Name",
        "Car",
        "Leave",
        "Time",
        "Arrive",
        "Ticket",
        "Depart",
        "People",
        "Dest",
        "Parking",
        "Open",
        "Id",
    }
)
NAMED_DOMAINS = frozenset({"Hotel", "Attraction", "Police", "Restaurant"})  # recommendations name the entity
BOOKING_SLOTS = {  # user act slots that ask for a booking
    "Train": ("People",),
    "Restaurant": ("Time", "Day", "People"),
    "Hotel": ("Stay", "Day", "People"),
}
DONT_CARE = frozenset({"do nt care", "do n't care", "dontcare"})
CAR_TYPES = ("toyota", "skoda", "bmw", "honda", "ford", "audi", "lexus", "volvo", "volkswagen", "tesla")
TAXI_PHONE_DIGITS = 11
TRAIN_OPTIONAL = ("leaveAt", "arriveBy")  # either narrows the search; asked for when both are missing
TRAIN_REQUIRED = ("day", "destination", "departure")
TRAIN_OFFER_MIN_CONSTRAINTS = 4
REQMORE_PROBABILITY = 0.5  # drawn after a booking; the act it adds is discarded with the others
WELCOME_PROBABILITY = 0.3  # after the user's bye
DRAW_BOUND = 999999  # ConvLab-2 picks with randint(0, 999999) % n


def pick(rng: random.Random, n: int) -> int:
    """An index below ``n`` drawn as ConvLab-2 draws it (slightly biased modulo)."""
    return rng.randint(0, DRAW_BOUND) % n


def group_acts(acts: Sequence[ActLike]) -> dict[str, list[list[str]]]:
    """``Domain-Intent`` -> ``[[slot, value], ...]`` in order of first appearance."""
    grouped: dict[str, list[list[str]]] = {}
    for intent, domain, slot, value in acts:
        grouped.setdefault(f"{domain}-{intent}", []).append([slot, value])
    return grouped


class RulePolicy:
    """``act(state, rng)`` -> system acts; call ``reset()`` at the start of every dialogue."""

    def __init__(self, db: Database):
        self.db = db
        # user act domain -> rule (None: ignored); any other domain is a database search
        self._handlers = {
            "general": self._greeting,
            "Taxi": self._taxi,
            "Booking": None,
            "Train": self._train,
        }
        self.reset()

    def reset(self) -> None:
        self._last_belief: dict[tuple[str, str, str], Any] = {}
        self._last_requests: set[tuple[str, str]] = set()

    def act(self, state: Mapping[str, Any], rng: random.Random) -> list[Act]:
        """Reply to ``state`` (``belief_state``, ``request_state``, ``user_action``), drawing from ``rng``."""
        user_acts = state["user_action"]
        user_action = (
            group_acts(user_acts) if user_acts and not isinstance(user_acts, str) else self._changes(state)
        )
        self._remember(state)

        reply: Reply = {}
        matches: dict[str, Sequence[Mapping[str, Any]]] = {}
        for key, slots in user_action.items():
            domain, intent = key.split("-")
            handler = self._handlers.get(domain, self._search)
            if handler is not None:
                handler(domain, intent, slots, state, reply, matches, rng)
            self._book(domain, slots, reply, matches)
            if ("Booking", "Book") in reply:
                rng.random()  # ConvLab-2 flips for a reqmore act that it then discards
                reply = {("Booking", "Book"): reply[("Booking", "Book")]}

        if not any(pairs or intent.lower() == "nooffer" for (_, intent), pairs in reply.items()):
            reply = {("general", "greet"): [["none", "none"]]}
        acts: list[Act] = []
        for (domain, intent), pairs in reply.items():
            if not pairs and domain == "general":
                acts.append([intent, domain, "none", "none"])
            else:
                acts.extend([intent, domain, slot, value] for slot, value in pairs)
        return acts

    # ---- memory for turns without user acts -------------------------------------------------------------

    def _remember(self, state: Mapping[str, Any]) -> None:
        self._last_belief = {
            (domain, part, slot): value
            for domain, parts in state["belief_state"].items()
            for part in ("book", "semi")
            for slot, value in parts[part].items()
            if slot != "booked"
        }
        self._last_requests = {
            (domain, slot) for domain, slots in state["request_state"].items() for slot in slots
        }

    def _changes(self, state: Mapping[str, Any]) -> dict[str, list[list[str]]]:
        """User acts read off what changed since the last turn: new values inform, new requests request."""
        changes: dict[str, list[list[str]]] = {}

        def add(key: str, pair: list[str]) -> None:
            pairs = changes.setdefault(key, [])
            if pair not in pairs:
                pairs.append(pair)

        for domain, parts in state["belief_state"].items():
            names = USER_ACT_SLOT.get(domain.capitalize(), {})
            for part in ("book", "semi"):
                for slot, value in parts[part].items():
                    if slot == "booked" or value == self._last_belief.get((domain, part, slot), ""):
                        continue
                    if part == "semi" and value == "":
                        continue
                    add(f"{domain.capitalize()}-Inform", [names.get(slot, slot), value])
        for domain, slots in state["request_state"].items():
            names = USER_ACT_SLOT.get(domain.capitalize(), {})
            for slot in slots:
                if (domain, slot) not in self._last_requests:
                    add(f"{domain.capitalize()}-Request", [names.get(slot, slot), "?"])
        return changes

    # ---- rules --------------------------------------------------------------------------------------------

    @staticmethod
    def _greeting(domain, intent, slots, state, reply: Reply, matches, rng: random.Random) -> None:
        if intent == "bye":
            reply.setdefault(("general", "bye"), [])
            if rng.random() < WELCOME_PROBABILITY:
                reply.setdefault(("general", "welcome"), [])
        elif intent == "thank":
            reply[("general", "welcome")] = []

    @staticmethod
    def _taxi(domain, intent, slots, state, reply: Reply, matches, rng: random.Random) -> None:
        """Book a taxi once a time is known, else ask for the time(s)."""
        wanted = state["belief_state"]["taxi"]["semi"]
        missing = ["Leave", "Arrive"] if wanted["leaveAt"] == "" and wanted["arriveBy"] == "" else []
        if not missing:
            car = CAR_TYPES[pick(rng, len(CAR_TYPES))]
            phone = "".join(str(pick(rng, 10)) for _ in range(TAXI_PHONE_DIGITS))
            reply.setdefault(("Taxi", "Inform"), []).extend([["Car", car], ["Phone", phone]])
            return
        count = pick(rng, len(missing)) + 1
        reply.setdefault(("Taxi", "Request"), []).extend([slot, "?"] for slot in missing[:count])

    def _search(self, domain, intent, slots, state, reply: Reply, matches, rng: random.Random) -> None:
        """Any domain but taxi and train: answer requests, or report none / one / several matches."""
        belief = state["belief_state"].get(domain.lower())
        if belief is None:
            return
        semi = belief["semi"]
        found = self.db.query(domain.lower(), tuple((s, v) for s, v in semi.items() if v != ""))
        matches[domain] = found
        names = USER_ACT_SLOT[domain]
        if not found:
            no_offer = reply.setdefault((domain, "NoOffer"), [])
            no_offer.extend(
                [names.get(slot, slot), value]
                for slot, value in semi.items()
                if value != "" and value not in DONT_CARE
            )
        if intent == "Request":
            inform = reply.setdefault((domain, "Inform"), [])
            if found:
                fields = SYSTEM_ACT_SLOT[domain]
                for slot, _ in slots:
                    field = fields.get(slot, slot)
                    inform.append([slot, found[0].get(field, "unknown")])
        elif len(found) == 1:
            self._inform_single(domain, semi, found[0], reply, rng)
        elif found:
            self._recommend(domain, found, reply, rng)

    @staticmethod
    def _inform_single(
        domain: str, semi: Mapping[str, Any], entity: Mapping[str, Any], reply: Reply, rng: random.Random
    ) -> None:
        inform = reply.setdefault((domain, "Inform"), [])
        slots = list(semi)
        if not slots:
            return
        count = pick(rng, len(slots)) + 1
        rng.shuffle(slots)
        names = USER_ACT_SLOT[domain]
        inform.extend([names.get(slot, slot), entity[slot]] for slot in slots[:count])

    @staticmethod
    def _recommend(domain: str, found: Sequence[Mapping[str, Any]], reply: Reply, rng: random.Random) -> None:
        rng.random()  # ConvLab-2 draws for a choice between strategies that is fixed to recommending
        inform = reply.setdefault((domain, "Inform"), [])
        recommend = reply.setdefault((domain, "Recommend"), [])
        inform.append(["Choice", str(len(found))])
        entity = found[pick(rng, len(found))]
        if domain in NAMED_DOMAINS:
            recommend.append(["Name", entity["name"]])
        fields = list(entity.items())
        count = min(pick(rng, 3), len(fields))
        rng.shuffle(fields)
        names = USER_ACT_SLOT[domain]
        for field, value in fields[:count]:
            slot = names.get(field, field)
            if slot in RECOMMENDABLE_SLOTS:
                recommend.append([slot, str(value)])

    def _train(self, domain, intent, slots, state, reply: Reply, matches, rng: random.Random) -> None:
        """Ask for a time and the missing route/day; answer requests; offer to book once 4 are known."""
        semi = state["belief_state"]["train"]["semi"]
        names = USER_ACT_SLOT["Train"]
        constraints = [(slot, semi[slot]) for slot in TRAIN_OPTIONAL if semi[slot] != ""]
        if not constraints:
            p = rng.random()
            asked = ("Leave",) if p < 0.33 else ("Arrive",) if p < 0.66 else ("Leave", "Arrive")
            reply.setdefault(("Train", "Request"), []).extend([slot, "?"] for slot in asked)
        request = reply.setdefault(("Train", "Request"), [])
        for slot in TRAIN_REQUIRED:
            if semi[slot] == "":
                request.append([names.get(slot, slot), "?"])
            else:
                constraints.append((slot, semi[slot]))
        found = self.db.query("train", tuple(constraints))
        matches["Train"] = found

        if intent == "Request":
            del reply[("Train", "Request")]
            inform = reply.setdefault(("Train", "Inform"), [])
            fields = SYSTEM_ACT_SLOT["Train"]
            if found:
                inform.extend(
                    [slot, found[0][field]]
                    for slot, _ in slots
                    if (field := fields.get(slot, slot)) is not None and field in found[0]
                )
            return
        if not found:
            reply.setdefault(("Train", "NoOffer"), []).extend([names.get(s, s), v] for s, v in constraints)
            reply.pop(("Train", "Request"), None)
        elif len(constraints) >= TRAIN_OFFER_MIN_CONSTRAINTS:
            reply.pop(("Train", "Request"), None)
            reply.setdefault(("Train", "OfferBook"), []).extend([names.get(s, s), v] for s, v in constraints)

    @staticmethod
    def _book(domain: str, slots, reply: Reply, matches: Mapping[str, Sequence[Mapping[str, Any]]]) -> None:
        """A user act with booking information books the first match of its domain, once per turn."""
        wanted = BOOKING_SLOTS.get(domain, ())
        if ("Booking", "Book") in reply or not any(slot in wanted for slot, _ in slots):
            return
        found = matches.get(domain)
        if found:
            reply[("Booking", "Book")] = [["Ref", found[0].get("Ref", "N/A")]]
