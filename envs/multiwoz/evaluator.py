"""Dialogue metrics and the per-turn evaluator reward, as ConvLab-2's ``MultiWozEvaluator`` computes them. Two
families of numbers come out of one ``Evaluator``:

ConvLab-2 (``DialogueMetrics`` fields without the ``paper_`` prefix):
  * book rate: for each goal domain with a booking and constraints, the share of its ``info`` constraints the
    booked entity meets (``destination``/``departure`` not counted; times compared as "leave no earlier",
    "arrive no later"; a taxi counts 1 once one is booked); the mean over those domains, None when there are none.
  * inform precision/recall/F1: a requested goal slot the system informed is a true positive, one it did not a
    false negative; a system inform whose value fails a plausibility check, or of a slot the user neither asked
    for nor constrained (among ConvLab-2's "requestable" list, which it compares against database slot names), is
    a false positive. Recall None (and all three None) when the goal requests nothing.
  * success: book rate 1 and inform recall 1 (a None side counts as met, not both None), and every goal
    domain's final goal still has a database match that includes the booked entity (``final_goal_analyze``, soft
    fuzzy matching of the informed ``reqt`` values). ``success_within_limit`` is 0 when the user did not end the
    dialogue (ConvLab-2's ``policy/evaluate.py``).
  * reward per user turn: +40 if the task is successful so far, else +5 if the current domain is, else -1.

GDPL / VRB papers (``paper_*``; computed by GDPL's ``metrics.py`` / ``ppo.py evaluate``):
  * success: book rate 1 and inform recall 1 (same None rules), no database check, whoever ended the dialogue.
  * match: the per-domain book scores of all dialogues pooled, then averaged (domains, not dialogues, weigh).
  * inform precision/recall/F1: true/false positives and false negatives summed over all dialogues first.
  * turns: user turns including the closing one (GDPL counts ``t + 2`` after ``t + 1`` system actions), i.e.
    ``rounds``; ConvLab-2's analyser reports twice that (``turns``).

The evaluator holds the user's goal by reference (the agenda user writes informed values into ``reqt``; the final
check reads them). Taxi look-ups draw from the ``rng`` passed in, as ConvLab-2 drew from the global ``random``.
"""

from __future__ import annotations

import random
import re
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass
from typing import Any

from envs.acts import ActLike
from envs.multiwoz.db import Database
from envs.multiwoz.ontology import NO_CONSTRAINT_VALUES

# ConvLab-2's evaluator domains, in its order (the order of book scores and of ``booked``).
EVAL_DOMAINS = ("attraction", "restaurant", "train", "hotel", "taxi", "hospital", "police")
BOOKING_DOMAINS = frozenset({"hotel", "restaurant", "train"})
INFORM_INTENTS = frozenset({"inform", "recommend", "offerbook", "offerbooked"})

# Lower-cased act slot of a system inform -> the goal/database slot it answers.
INFORMED_GOAL_SLOT: Mapping[str, Mapping[str, str]] = {
    "attraction": {
        "addr": "address",
        "area": "area",
        "fee": "entrance fee",
        "name": "name",
        "phone": "phone",
        "post": "postcode",
        "type": "type",
    },
    "restaurant": {
        "addr": "address",
        "area": "area",
        "food": "food",
        "name": "name",
        "phone": "phone",
        "post": "postcode",
        "price": "pricerange",
    },
    "train": {
        "id": "trainID",
        "arrive": "arriveBy",
        "day": "day",
        "depart": "departure",
        "dest": "destination",
        "time": "duration",
        "leave": "leaveAt",
        "ticket": "price",
    },
    "hotel": {
        "addr": "address",
        "area": "area",
        "internet": "internet",
        "parking": "parking",
        "name": "name",
        "phone": "phone",
        "post": "postcode",
        "price": "pricerange",
        "stars": "stars",
        "type": "type",
    },
    "taxi": {"car": "car type", "phone": "phone"},
    "hospital": {"post": "postcode", "phone": "phone", "addr": "address", "department": "department"},
    "police": {"post": "postcode", "phone": "phone", "addr": "address"},
}
# ConvLab-2's "requestable" slots, spelt as act slots. An unrequested inform is a false positive only when its
# *goal* slot name is listed here, so e.g. an unrequested address never is (``addr`` != ``address``).
REQUESTABLE: Mapping[str, frozenset[str]] = {
    "attraction": frozenset({"post", "phone", "addr", "fee", "area", "type"}),
    "restaurant": frozenset({"addr", "phone", "post", "ref", "price", "area", "food"}),
    "train": frozenset({"ticket", "time", "ref", "id", "arrive", "leave"}),
    "hotel": frozenset(
        {"addr", "post", "phone", "ref", "price", "internet", "parking", "area", "type", "stars"}
    ),
    "taxi": frozenset({"car", "phone"}),
    "hospital": frozenset({"post", "phone", "addr"}),
    "police": frozenset({"addr", "post", "phone"}),
}

_CLOCK = re.compile(r"^(([01]\d|2[0-4]):([0-5]\d)|24:00)$")
_PHONE = re.compile(r"^\d{11}$")
_POSTCODE = re.compile(r"^cb\d{1,3}[a-z]{2,3}$")
_STARS = re.compile(r"^\d$")
_TRAIN_ID = re.compile(r"^tr\d{4}$")
_REFERENCE = re.compile(r"^\d{8}$")
_AREAS = ("centre", "east", "south", "west", "north")
_DAYS = ("monday", "tuesday", "wednesday", "thursday", "friday", "saturday", "sunday")

# Plausibility of an informed value, by goal slot: (domain, value) -> ok. Slots not listed are always plausible.
VALUE_CHECKS: Mapping[str, Callable[[str, str], bool]] = {
    "area": lambda domain, value: value.lower() in _AREAS,
    "arriveBy": lambda domain, value: bool(_CLOCK.match(value)),
    "leaveAt": lambda domain, value: bool(_CLOCK.match(value)),
    "day": lambda domain, value: value.lower() in _DAYS,
    "duration": lambda domain, value: "minute" in value,
    "internet": lambda domain, value: value in ("yes", "no", "none"),
    "parking": lambda domain, value: value in ("yes", "no", "none"),
    "phone": lambda domain, value: bool(_PHONE.match(value)) or domain == "restaurant",
    "price": lambda domain, value: "pound" in value,
    "pricerange": lambda domain, value: (
        value in ("cheap", "expensive", "moderate", "free") or domain == "attraction"
    ),
    "postcode": lambda domain, value: bool(_POSTCODE.match(value)) or value == "pe296fl",
    "stars": lambda domain, value: bool(_STARS.match(value)),
    "trainID": lambda domain, value: bool(_TRAIN_ID.match(value.lower())),
}

# The agenda user's "not settled yet" values for a requested slot or a booking.
UNSETTLED_VALUES = frozenset({"?", "dontcare", "none", "no"})

REWARD_SUCCESS = 40
REWARD_DOMAIN_SUCCESS = 5
REWARD_TURN = -1


def _clock(text: str) -> int:
    """``"09:45"`` -> 945; raises ValueError/IndexError as ConvLab-2's inline parsing did."""
    parts = text.split(":")
    return int(parts[0]) * 100 + int(parts[1])


def _goal_part(domain_goal: Mapping[str, Any] | None, part: str) -> Any:
    if domain_goal is None:
        return {}
    return domain_goal.get(part, {})


def succeeded(book_rate: float | None, inform_recall: float | None) -> bool:
    """Book rate 1 and inform recall 1, where a None side (nothing to book / request) counts as met."""
    if book_rate is None and inform_recall is None:
        return False
    return book_rate in (None, 1) and inform_recall in (None, 1)


def precision_recall_f1(tp: int, fp: int, fn: int) -> tuple[float | None, float | None, float | None]:
    """ConvLab-2's rules: all None when nothing was requested; precision and F1 0 when nothing was right."""
    if tp + fn == 0:
        return None, None, None
    recall = tp / (tp + fn)
    if tp == 0:
        return 0, recall, 0
    precision = tp / (tp + fp)
    return precision, recall, 2 * precision * recall / (precision + recall)


def user_goal_complete(goal: Mapping[str, Mapping[str, Any]]) -> bool:
    """The agenda user's own judgement: every requested slot answered and every booking made."""
    for domain_goal in goal.values():
        if any(value in UNSETTLED_VALUES for value in domain_goal.get("reqt", {}).values()):
            return False
        if "booked" in domain_goal and domain_goal["booked"] in UNSETTLED_VALUES:
            return False
    return True


@dataclass(frozen=True, slots=True)
class DialogueMetrics:
    """One finished dialogue's scores (see the module docstring for the definitions)."""

    success: int
    success_within_limit: int
    complete: bool
    book_rate: float | None
    book_scores: tuple[float, ...]
    inform_precision: float | None
    inform_recall: float | None
    inform_f1: float | None
    inform_counts: tuple[int, int, int]
    final_goal_analyze: float
    rounds: int
    terminated: bool
    paper_success: int

    @property
    def turns(self) -> int:
        """Turns as ConvLab-2's analyser counts them: a user and a system utterance per round."""
        return 2 * self.rounds


def summarize(dialogues: Iterable[DialogueMetrics]) -> dict[str, float | None]:
    """Means over dialogues (ConvLab-2; None scores skipped) and the papers' pooled numbers (``paper_*``)."""
    dialogues = list(dialogues)
    if not dialogues:
        raise ValueError("summarize needs at least one DialogueMetrics")

    def mean(values: Iterable[float | None]) -> float | None:
        kept = [v for v in values if v is not None]
        return sum(kept) / len(kept) if kept else None

    tp, fp, fn = (sum(d.inform_counts[i] for d in dialogues) for i in range(3))
    precision, recall, f1 = precision_recall_f1(tp, fp, fn)
    return {
        "dialogues": len(dialogues),
        "success": mean(d.success for d in dialogues),
        "success_within_limit": mean(d.success_within_limit for d in dialogues),
        "complete": mean(float(d.complete) for d in dialogues),
        "book_rate": mean(d.book_rate for d in dialogues),
        "inform_precision": mean(d.inform_precision for d in dialogues),
        "inform_recall": mean(d.inform_recall for d in dialogues),
        "inform_f1": mean(d.inform_f1 for d in dialogues),
        "final_goal_analyze": mean(d.final_goal_analyze for d in dialogues),
        "rounds": mean(d.rounds for d in dialogues),
        "turns": mean(d.turns for d in dialogues),
        "paper_success": mean(d.paper_success for d in dialogues),
        "paper_match": mean(score for d in dialogues for score in d.book_scores),
        "paper_inform_precision": precision,
        "paper_inform_recall": recall,
        "paper_inform_f1": f1,
        "paper_turns": mean(d.rounds for d in dialogues),
    }


class Evaluator:
    """ConvLab-2's MultiWOZ evaluator fed with dialogue acts; ``reset(goal)`` per dialogue.

    Per round, feed ``add_system_acts`` (the acts the user answered) then ``add_user_acts``, then read ``reward``.
    System informs are folded into per-domain sets as they arrive, so scoring never rescans the history.
    """

    def __init__(self, db: Database):
        self.db = db
        self.reset({})

    def reset(self, goal: Mapping[str, Mapping[str, Any]]) -> None:
        """Start a dialogue scored against ``goal`` (the user's live goal dict, held by reference)."""
        self.goal = goal
        self.cur_domain = ""
        self.booked: dict[str, Any] = dict.fromkeys(EVAL_DOMAINS)
        self._informed: dict[str, set[str]] = {domain: set() for domain in EVAL_DOMAINS}
        self._bad_informs: dict[str, int] = dict.fromkeys(EVAL_DOMAINS, 0)

    def _follow_domain(self, domain: str) -> None:
        if domain in self.booked:
            self.cur_domain = domain

    def add_system_acts(self, acts: Iterable[ActLike]) -> None:
        for intent, domain, slot, value in acts:
            domain, intent, slot, value = domain.lower(), intent.lower(), slot.lower(), str(value)
            self._follow_domain(domain)
            if domain == "booking" and intent == "book" and slot == "ref":
                if self.cur_domain in BOOKING_DOMAINS:
                    self._book(self.cur_domain, value)
            elif domain == "train" and intent in ("offerbooked", "inform") and slot == "ref":
                self._book("train", value)
            elif domain == "taxi" and intent == "inform" and slot == "car" and not self.booked["taxi"]:
                self.booked["taxi"] = "booked"
            if (
                intent in INFORM_INTENTS
                and domain in INFORMED_GOAL_SLOT
                and value.strip() not in NO_CONSTRAINT_VALUES
            ):
                goal_slot = INFORMED_GOAL_SLOT[domain].get(slot)
                if goal_slot is None:
                    continue
                check = VALUE_CHECKS.get(goal_slot)
                if check is None or check(domain, value):
                    self._informed[domain].add(goal_slot)
                else:
                    self._bad_informs[domain] += 1

    def _book(self, domain: str, reference: str) -> None:
        """A reference number books the database record it indexes (the first valid one per domain sticks)."""
        records = self.db.records(domain)
        if not self.booked[domain] and _REFERENCE.match(reference) and int(reference) < len(records):
            entity = dict(records[int(reference)])
            entity["Ref"] = reference
            self.booked[domain] = entity

    def add_user_acts(self, acts: Iterable[ActLike]) -> None:
        for _, domain, _, _ in acts:
            self._follow_domain(domain.lower())

    # -- scores ------------------------------------------------------------------------------------------------

    def _domain_book_score(self, domain: str) -> float | None:
        domain_goal = self.goal.get(domain)
        if not _goal_part(domain_goal, "book"):
            return None
        info = _goal_part(domain_goal, "info")
        total = len(info)
        if total == 0:
            return None
        entity = self.booked[domain]
        if entity is None:
            return 0
        if domain == "taxi":
            return 1
        matched = 0
        for slot, wanted in info.items():
            if slot in ("destination", "departure"):
                total -= 1
            elif slot in ("leaveAt", "arriveBy"):
                try:
                    wanted_time, entity_time = _clock(wanted), _clock(entity[slot])
                except (ValueError, IndexError):
                    matched += 1
                    continue
                on_time = wanted_time <= entity_time if slot == "leaveAt" else wanted_time >= entity_time
                matched += on_time
            elif wanted.strip() == entity[slot].strip():
                matched += 1
        return matched / total if total else None

    def book_scores(self, domains: Iterable[str] = EVAL_DOMAINS) -> list[float]:
        """Per goal domain with a booking and constraints: the share of constraints the booked entity meets."""
        return [score for score in map(self._domain_book_score, domains) if score is not None]

    def book_rate(self, domains: Iterable[str] = EVAL_DOMAINS) -> float | None:
        scores = self.book_scores(domains)
        return sum(scores) / len(scores) if scores else None

    def inform_counts(self, domains: Iterable[str] = EVAL_DOMAINS) -> tuple[int, int, int]:
        """(true positives, false positives, false negatives) of the system's informs against the goal."""
        tp = fp = fn = 0
        for domain in domains:
            domain_goal = self.goal.get(domain)
            requested = _goal_part(domain_goal, "reqt")
            constrained = _goal_part(domain_goal, "info")
            informed = self._informed[domain]
            fp += self._bad_informs[domain]
            for slot in requested:
                if slot in informed:
                    tp += 1
                else:
                    fn += 1
            requestable = REQUESTABLE[domain]
            fp += sum(
                1
                for slot in informed
                if slot not in requested and slot not in constrained and slot in requestable
            )
        return tp, fp, fn

    def inform_f1(self) -> tuple[float | None, float | None, float | None]:
        return precision_recall_f1(*self.inform_counts())

    def _final_goal_counts(self, rng: random.Random | None) -> tuple[int, int]:
        matched = mismatched = 0
        for domain, domain_goal in self.goal.items():
            requested = list(domain_goal.get("reqt", {}).items())
            constrained = list(domain_goal.get("info", {}).items())
            found = self.db.query(domain, constrained, soft_constraints=requested, rng=rng)
            if not found:
                mismatched += 1
                continue
            booked = self.booked[domain]
            if domain_goal.get("book") and isinstance(booked, Mapping):
                if any(record["Ref"] == booked["Ref"] for record in found):
                    matched += 1
                else:
                    mismatched += 1
            else:
                matched += 1
        return matched, mismatched

    def final_goal_analyze(self, rng: random.Random | None = None) -> float:
        """Share of goal domains whose final goal has a database match containing the booked entity (1 if none)."""
        matched, mismatched = self._final_goal_counts(rng)
        return matched / (matched + mismatched) if matched + mismatched else 1

    def _rates(self, domains: Iterable[str]) -> tuple[float | None, float | None]:
        """``book_rate`` and ``inform_f1``'s recall over ``domains`` in one pass: what success reads every turn."""
        goal, informed, scores, tp, fn = self.goal, self._informed, [], 0, 0
        for domain in domains:
            domain_goal = goal.get(domain)
            if domain_goal is None:  # no book score, nothing requested
                continue
            score = self._domain_book_score(domain)
            if score is not None:
                scores.append(score)
            told = informed[domain]
            for slot in domain_goal.get("reqt", {}):
                if slot in told:
                    tp += 1
                else:
                    fn += 1
        return (sum(scores) / len(scores) if scores else None), (tp / (tp + fn) if tp + fn else None)

    def task_success(self, rng: random.Random | None = None) -> int:
        """ConvLab-2's success. ``rng`` feeds the taxi look-up (needed when the goal has a taxi domain)."""
        if not succeeded(*self._rates(EVAL_DOMAINS)):
            if "taxi" in self.goal:  # ConvLab-2 ran the database check regardless: keep the stream in step
                self.db.query("taxi", (), rng=rng)
            return 0
        return int(self.final_goal_analyze(rng) == 1)

    def domain_success(self, domain: str) -> int | None:
        """Success restricted to one domain (no database check); None when the goal lacks the domain."""
        if domain not in self.goal:
            return None
        return int(succeeded(*self._rates((domain,))))

    def reward(self, rng: random.Random | None = None) -> int:
        """The per-turn evaluator reward after a user turn."""
        if self.task_success(rng):
            return REWARD_SUCCESS
        if self.cur_domain and self.domain_success(self.cur_domain):
            return REWARD_DOMAIN_SUCCESS
        return REWARD_TURN

    def dialogue_metrics(
        self, rounds: int, terminated: bool, rng: random.Random | None = None
    ) -> DialogueMetrics:
        """Score the finished dialogue; ``rng`` feeds the taxi look-ups of the success check."""
        book_scores = tuple(self.book_scores())
        book_rate = sum(book_scores) / len(book_scores) if book_scores else None
        tp, fp, fn = self.inform_counts()
        precision, recall, f1 = precision_recall_f1(tp, fp, fn)
        success = self.task_success(rng)
        return DialogueMetrics(
            success=success,
            success_within_limit=success if terminated else 0,
            complete=user_goal_complete(self.goal),
            book_rate=book_rate,
            book_scores=book_scores,
            inform_precision=precision,
            inform_recall=recall,
            inform_f1=f1,
            inform_counts=(tp, fp, fn),
            final_goal_analyze=self.final_goal_analyze(rng),
            rounds=rounds,
            terminated=terminated,
            paper_success=int(succeeded(book_rate, recall)),
        )
