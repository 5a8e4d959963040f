"""The MultiWOZ user-goal generator of ConvLab-2, draw for draw.

A goal picks an ordering of domains, samples each domain's constraints (``info``), requested slots (``reqt``)
and booking details (``book``) from the goal model's corpus statistics, repairs constraints the database cannot
satisfy (the unsatisfiable ones are kept as ``fail_info``), then ties the domains together: a taxi between the
places visited, a restaurant near the attraction, one party and day for restaurant and hotel, a train on the
hotel's days.

Randomness follows ConvLab-2's ``GoalGenerator.get_user_goal`` (info combinations sampled from the training
set, requests sampled slot by slot): Python draws come from the injected ``random.Random`` and categorical draws
from the injected legacy ``np.random.RandomState`` (``multinomial(1, p)``), in ConvLab-2's order. Seeding both
with ``s`` reproduces ConvLab-2's goal for seed ``s`` and leaves ``rng`` where ConvLab-2 left ``random``.
"""

from __future__ import annotations

import logging
import random
from bisect import bisect
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from itertools import accumulate
from typing import Any

import numpy as np

from envs.multiwoz.data import GoalModel
from envs.multiwoz.db import Database

logger = logging.getLogger(__name__)

WEEKDAYS = ("monday", "tuesday", "wednesday", "thursday", "friday", "saturday", "sunday")
NAMEABLE_DOMAINS = ("attraction", "hotel", "restaurant")  # a goal naming the venue asks for nothing else
TIMED_DOMAINS = ("taxi", "train")  # exactly one of leaveAt / arriveBy
TAXI_PLACES = ("attraction", "hotel", "restaurant", "police", "hospital")  # a taxi before them serves them
TRAIN_HUB = "cambridge"
MAX_ADJUST_TRIALS = 100
# Booking slots a domain's booking must carry; a train booking needs at least its fallback slot.
REQUIRED_BOOK_SLOTS = {"restaurant": ("time", "day", "people"), "hotel": ("stay", "day", "people")}
FALLBACK_BOOK_SLOT = {"train": "people"}
# Domains whose repaired constraints replace the failing ones silently (no ``fail_info`` for the user to try).
SILENT_REPAIR_DOMAINS = ("train",)


class Categorical:
    """ConvLab-2's ``nomial_sample``: one legacy ``multinomial(1, p)`` draw over a mapping's keys, in order."""

    __slots__ = ("values", "pvals")

    def __init__(self, distribution: Mapping[Any, float]):
        self.values = tuple(distribution)
        self.pvals = np.asarray(list(distribution.values()), dtype=np.float64)

    def draw(self, np_rng: np.random.RandomState) -> Any:
        return self.values[int(np_rng.multinomial(1, self.pvals).argmax())]


class WeightedChoice:
    """``random.choices(keys, weights)[0]`` with the cumulative weights computed once (same single draw)."""

    __slots__ = ("values", "cum_weights", "total", "last")

    def __init__(self, weights: Mapping[Any, float]):
        self.values = tuple(weights)
        self.cum_weights = list(accumulate(weights.values()))
        self.total = self.cum_weights[-1] + 0.0
        self.last = len(self.values) - 1

    def draw(self, rng: random.Random) -> Any:
        return self.values[bisect(self.cum_weights, rng.random() * self.total, 0, self.last)]


@dataclass(frozen=True)
class DomainModel:
    """One domain's goal statistics, arranged for sampling."""

    name: str
    info_combinations: WeightedChoice | None  # None: the domain has no constraints (police)
    info_slot_probability: Mapping[str, float]
    info_values: Mapping[str, Categorical]
    info_value_choices: Mapping[str, tuple[str, ...]]  # candidates when repairing a constraint
    request_probabilities: tuple[tuple[str, float], ...]
    booking_probability: float | None  # None: the domain is never booked
    book_slot_probabilities: tuple[tuple[str, float], ...]
    book_values: Mapping[str, Categorical]

    @classmethod
    def from_goal_model(cls, model: GoalModel, domain: str) -> DomainModel:
        slot_probability = model.ind_slot_dist[domain]
        value_distribution = model.ind_slot_value_dist[domain]
        info_values = value_distribution.get("info", {})
        book_values = value_distribution.get("book", {})
        has_info = "info" in slot_probability
        has_booking = "book" in slot_probability
        return cls(
            name=domain,
            info_combinations=WeightedChoice(model.slots_combination_dist[domain]["info"])
            if has_info
            else None,
            info_slot_probability=dict(slot_probability.get("info", {})),
            info_values={slot: Categorical(dist) for slot, dist in info_values.items()},
            info_value_choices={slot: tuple(dist) for slot, dist in info_values.items()},
            request_probabilities=tuple(slot_probability.get("reqt", {}).items()),
            booking_probability=model.book_dist[domain] if has_booking else None,
            book_slot_probabilities=tuple(slot_probability.get("book", {}).items()),
            book_values={slot: Categorical(dist) for slot, dist in book_values.items()},
        )


InfoRule = Callable[[DomainModel, dict, random.Random, np.random.RandomState], None]
GoalRule = Callable[[dict, list, random.Random], None]


class GoalGenerator:
    """Sample ConvLab-2 user goals: ``{domain: {'info', 'reqt'?, 'book'?, 'fail_info'?}, 'domain_ordering'}``."""

    def __init__(self, model: GoalModel, db: Database):
        self.db = db
        self.orderings = Categorical(model.domain_ordering_dist)
        unknown = {d for ordering in self.orderings.values for d in ordering} - set(model.ind_slot_dist)
        if unknown:
            raise ValueError(f"goal model orders domains {sorted(unknown)} it has no slot statistics for")
        self.domains = {domain: DomainModel.from_goal_model(model, domain) for domain in model.ind_slot_dist}
        self.train_records = db.records("train")
        info_rules: dict[str, tuple[InfoRule, ...]] = {
            domain: (self._name_alone_or_dropped,) for domain in NAMEABLE_DOMAINS
        }
        info_rules["train"] = (self._one_time_constraint, self._endpoints_of_a_real_train)
        info_rules["taxi"] = (self._one_time_constraint, self._taxi_endpoints)
        self.info_rules = info_rules
        # Cross-domain consistency, applied in this order.
        self.goal_rules: tuple[GoalRule, ...] = (
            self._taxi_between_places,
            self._restaurant_near_attraction,
            self._restaurant_with_hotel_party,
            self._train_on_hotel_days,
        )

    @classmethod
    def from_data(cls, data, db: Database) -> GoalGenerator:
        """From a loaded data folder (``envs.multiwoz.data.load()``) and its database."""
        return cls(data.goal_model, db)

    def sample(self, rng: random.Random, np_rng: np.random.RandomState) -> dict[str, Any]:
        ordering: tuple[str, ...] = ()
        while not ordering:  # the corpus has goals with no domain; they are redrawn
            ordering = self.orderings.draw(np_rng)
        goal: dict[str, Any] = {domain: self.sample_domain(domain, rng, np_rng) for domain in ordering}
        ordering_list = list(ordering)
        for rule in self.goal_rules:
            rule(goal, ordering_list, rng)
        goal["domain_ordering"] = tuple(ordering_list)
        return goal

    def sample_domain(self, domain: str, rng: random.Random, np_rng: np.random.RandomState) -> dict[str, Any]:
        """One domain's goal; redrawn until it has constraints (when the domain takes any) and asks for
        something (requests or a booking)."""
        model = self.domains[domain]
        rules = self.info_rules.get(domain, ())
        while True:
            info: dict[str, str] = {}
            domain_goal: dict[str, Any] = {"info": info}
            if model.info_combinations is not None:
                for slot in model.info_combinations.draw(rng):
                    info[slot] = model.info_values[slot].draw(np_rng)
                for rule in rules:
                    rule(model, info, rng, np_rng)
                if not info:
                    continue
            # One draw per slot, also for slots the constraints already fix.
            requests = [
                slot for slot, p in model.request_probabilities if rng.random() < p and slot not in info
            ]
            if requests:
                domain_goal["reqt"] = requests
            if model.booking_probability is not None and rng.random() < model.booking_probability:
                domain_goal["book"] = self._booking(model, rng, np_rng)
            if not self._has_match(domain, info, rng):
                repaired = self._repaired_info(model, info, rng)
                if repaired is None:
                    continue
                if domain not in SILENT_REPAIR_DOMAINS:
                    domain_goal["fail_info"] = info
                domain_goal["info"] = repaired
            if "reqt" in domain_goal or "book" in domain_goal:
                return domain_goal

    def _booking(
        self, model: DomainModel, rng: random.Random, np_rng: np.random.RandomState
    ) -> dict[str, str]:
        book = {
            slot: model.book_values[slot].draw(np_rng)
            for slot, p in model.book_slot_probabilities
            if rng.random() < p
        }
        for slot in REQUIRED_BOOK_SLOTS.get(model.name, ()):
            if slot not in book:
                book[slot] = model.book_values[slot].draw(np_rng)
        fallback = FALLBACK_BOOK_SLOT.get(model.name)
        if fallback is not None and not book:
            book[fallback] = model.book_values[fallback].draw(np_rng)
        return book

    def _has_match(self, domain: str, info: Mapping[str, str], rng: random.Random) -> bool:
        # A taxi "query" always answers, but draws a taxi from rng, as ConvLab-2's did.
        return bool(self.db.query(domain, info.items(), rng=rng))

    def _repaired_info(
        self, model: DomainModel, info: dict[str, str], rng: random.Random
    ) -> dict[str, str] | None:
        """Change one random constraint to a random value until the database has a match; None if it never does."""
        for _ in range(MAX_ADJUST_TRIALS):
            slot = rng.choice(tuple(info))
            repaired = dict(info)
            repaired[slot] = rng.choice(model.info_value_choices[slot])
            if self._has_match(model.name, repaired, rng):
                return repaired
        return None

    # Per-domain constraint rules (applied in order after the slot combination's values are drawn).

    def _name_alone_or_dropped(
        self, model: DomainModel, info: dict, rng: random.Random, np_rng: np.random.RandomState
    ) -> None:
        """A named venue needs no other constraint: keep the name alone, or drop it, by how often names occur."""
        if "name" in info and len(info) > 1:
            if rng.random() < model.info_slot_probability["name"]:
                name = info["name"]
                info.clear()
                info["name"] = name
            else:
                del info["name"]

    def _one_time_constraint(
        self, model: DomainModel, info: dict, rng: random.Random, np_rng: np.random.RandomState
    ) -> None:
        """Exactly one of leaveAt / arriveBy, chosen by their relative frequencies."""
        leave, arrive = model.info_slot_probability["leaveAt"], model.info_slot_probability["arriveBy"]
        if "arriveBy" in info and "leaveAt" in info:
            del info["arriveBy" if rng.random() < leave / (arrive + leave) else "leaveAt"]
        if "arriveBy" not in info and "leaveAt" not in info:
            slot = "arriveBy" if rng.random() < arrive / (arrive + leave) else "leaveAt"
            info[slot] = model.info_values[slot].draw(np_rng)

    def _endpoints_of_a_real_train(
        self, model: DomainModel, info: dict, rng: random.Random, np_rng: np.random.RandomState
    ) -> None:
        """Departure and destination of a random timetable entry, so the route exists."""
        train = rng.choice(self.train_records)
        info["departure"] = train["departure"]
        info["destination"] = train["destination"]

    def _taxi_endpoints(
        self, model: DomainModel, info: dict, rng: random.Random, np_rng: np.random.RandomState
    ) -> None:
        """Both endpoints present; if they coincide, one is redrawn once (by their relative frequencies)."""
        for slot in ("departure", "destination"):
            if slot not in info:
                info[slot] = model.info_values[slot].draw(np_rng)
        if info["departure"] == info["destination"]:
            depart, dest = (
                model.info_slot_probability["departure"],
                model.info_slot_probability["destination"],
            )
            slot = "departure" if rng.random() < depart / (depart + dest) else "destination"
            info[slot] = model.info_values[slot].draw(np_rng)

    # Cross-domain rules.

    def _taxi_between_places(self, goal: dict, ordering: list, rng: random.Random) -> None:
        """A taxi after a visited place loses its destination (and after two, its departure): the trip is
        between those places. After a booked restaurant it must arrive by the booking time."""
        if "taxi" not in ordering:
            return
        places = [d for d in ordering[: ordering.index("taxi")] if d in TAXI_PLACES]
        taxi_info = goal["taxi"]["info"]
        if places:
            del taxi_info["destination"]
            if places[-1] == "restaurant" and "book" in goal["restaurant"]:
                taxi_info["arriveBy"] = goal["restaurant"]["book"]["time"]
                taxi_info.pop("leaveAt", None)
        if len(places) >= 2:
            del taxi_info["departure"]

    def _restaurant_near_attraction(self, goal: dict, ordering: list, rng: random.Random) -> None:
        """A restaurant after an attraction is, half the time, in the attraction's area (when one exists)."""
        if "restaurant" not in ordering or "attraction" not in ordering:
            return
        restaurant, attraction = goal["restaurant"], goal["attraction"]
        if (
            "fail_info" in restaurant
            or ordering.index("restaurant") < ordering.index("attraction")
            or "area" not in restaurant["info"]
            or "area" not in attraction["info"]
        ):
            return
        area = attraction["info"]["area"]
        nearby = {**restaurant["info"], "area": area}
        if self.db.query("restaurant", nearby.items()) and rng.random() < 0.5:
            restaurant["info"]["area"] = area

    def _restaurant_with_hotel_party(self, goal: dict, ordering: list, rng: random.Random) -> None:
        """Restaurant and hotel bookings share the day, and half the time the party size.

        ConvLab-2 no longer generates ``fail_book``, so its fail_book adjustments never apply.
        """
        if "restaurant" not in ordering or "hotel" not in ordering:
            return
        restaurant, hotel = goal["restaurant"], goal["hotel"]
        if "book" not in restaurant or "book" not in hotel:
            return
        if rng.random() < 0.5:
            restaurant["book"]["people"] = hotel["book"]["people"]
        rng.random()  # ConvLab-2 draws for the day too, with probability 1.0
        restaurant["book"]["day"] = hotel["book"]["day"]

    def _train_on_hotel_days(self, goal: dict, ordering: list, rng: random.Random) -> None:
        """A train into town arrives on the hotel's first day; one out of town leaves on its check-out day.

        If no train runs then, the train goal is dropped. ConvLab-2 meant to drop it from the ordering too but
        raises TypeError there (``tuple(list.remove(...))``); we drop it from both.
        """
        if "hotel" not in ordering or "train" not in ordering or "book" not in goal["hotel"]:
            return
        booking, train_info = goal["hotel"]["book"], goal["train"]["info"]
        if train_info["destination"] == TRAIN_HUB and "day" in booking:
            train_info["day"] = booking["day"]
        elif train_info["departure"] == TRAIN_HUB and "day" in booking and "stay" in booking:
            checkout = (WEEKDAYS.index(booking["day"]) + int(booking["stay"])) % len(WEEKDAYS)
            train_info["day"] = WEEKDAYS[checkout]
        if not self.db.query("train", train_info.items()):
            logger.debug("no train matches %s on the hotel's days; the goal drops its train", train_info)
            del goal["train"]
            ordering.remove("train")
