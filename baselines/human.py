"""The Human row: MultiWOZ corpus dialogues scored by our evaluator, as if the wizard were a policy.

``python -m baselines.human [--split test] [--out FILE] [--data-dir DIR]``

Each corpus dialogue is fed to ``envs.multiwoz.evaluator.Evaluator`` turn by turn, in order: the annotated
user acts as user acts (even positions of ``log``), the annotated system acts as system acts (odd positions,
the closing system turn included). Neither GDPL nor ConvLab-2 ships the script behind the papers' Human row,
so what the simulated dialogue gets from its user is rebuilt from the corpus:

- Goal: the corpus ``goal`` per domain it names: ``info`` (the final constraints; ``fail_info`` only
  says which constraints the wizard had to talk the user out of), ``reqt`` as requested slots, and
  ``book`` when the domain asks for a booking (its ``invalid``/``pre_invalid`` flags dropped).
- Requested values: the agenda user writes every value the system informs for a requested slot into its goal's
  ``reqt``, and the final database check matches those values softly. Here every annotated system inform
  of a requested slot does the same (the last one wins); a slot never informed keeps ``?`` and fails it.
- Bookings: the evaluator books the database record whose index a system ``Ref`` act gives (the simulated
  system's references are record indices). Wizards gave MultiWOZ's random reference codes instead, which
  would book nothing (book rate 0 wherever the goal books). So each code is looked up in the dialogue's belief
  states (``metadata[domain].book.booked``: the code and the booked venue's name or train ID) and replaced by
  the index of that venue in our database, for the domain the evaluator will book (the current domain for
  ``Booking-Book``, the train for ``Train-*``). A code that names no booking of that domain stays as it is
  and books nothing; ``references`` in the output counts each outcome.
- Turns: rounds = user turns (the papers' turns); ConvLab-2's turns are twice that. Every corpus dialogue
  ends by the user's choice (success within the turn limit = success).
"""

from __future__ import annotations

import dataclasses
import logging
import random
import sys
from collections import Counter
from collections.abc import Mapping, Sequence
from typing import Any

from envs.acts import Act
from envs.cli import ArgumentParser, command
from envs.fileio import unwritable, write_json
from envs.multiwoz import data as mw_data
from envs.multiwoz.db import Database
from envs.multiwoz.evaluator import (
    BOOKING_DOMAINS,
    EVAL_DOMAINS,
    INFORM_INTENTS,
    INFORMED_GOAL_SLOT,
    DialogueMetrics,
    Evaluator,
    summarize,
)
from vrb.evaluate import ci95, format_table

logger = logging.getLogger(__name__)

UNKNOWN = "?"  # a requested slot nobody has answered yet, as the agenda user writes it
BOOKING_FLAGS = ("invalid", "pre_invalid")  # corpus bookkeeping inside ``goal[domain]["book"]``
BOOKED_KEY = {"hotel": "name", "restaurant": "name", "train": "trainID"}  # metadata booked entry -> DB field
DISAMBIGUATING_SLOTS = (
    "day",
    "departure",
    "destination",
)  # belief-state slots that pick one of a train ID's runs
SPLITS = ("train", "val", "test")


def corpus_goal(goal: Mapping[str, Any]) -> dict[str, dict[str, Any]]:
    """A corpus ``goal`` as the evaluator's goal dict (the agenda user's ``domain_goals`` layout)."""
    converted: dict[str, dict[str, Any]] = {}
    for domain in EVAL_DOMAINS:
        parts = goal.get(domain)
        if not parts:
            continue
        domain_goal: dict[str, Any] = {"info": dict(parts.get("info", {}))}
        if parts.get("reqt"):
            domain_goal["reqt"] = dict.fromkeys(parts["reqt"], UNKNOWN)
        if parts.get("book"):
            domain_goal["book"] = {k: v for k, v in parts["book"].items() if k not in BOOKING_FLAGS}
            domain_goal["booked"] = UNKNOWN
        converted[domain] = domain_goal
    return converted


def corpus_acts(dialog_act: Mapping[str, Sequence[Sequence[str]]]) -> list[Act]:
    """``{"Hotel-Inform": [["Area", "east"]]}`` -> ``[["Inform", "Hotel", "Area", "east"]]``, in order."""
    acts = []
    for domain_intent, pairs in dialog_act.items():
        domain, _, intent = domain_intent.partition("-")
        acts.extend([intent, domain, slot, value] for slot, value in pairs)
    return acts


class ReferenceResolver:
    """Corpus booking codes -> database record indices, from one dialogue's belief states.

    Train IDs repeat across days and routes, so a booked train is the record with that ID that agrees most
    with the belief state's day, departure and destination (the first such one in database order).
    """

    def __init__(self, db: Database):
        self.records = {domain: db.records(domain) for domain in BOOKED_KEY}
        self.index: dict[str, dict[str, list[int]]] = {}
        for domain, field in BOOKED_KEY.items():
            table: dict[str, list[int]] = {}
            for i, record in enumerate(self.records[domain]):
                table.setdefault(_normal(record[field]), []).append(i)
            self.index[domain] = table

    def bookings(self, log: Sequence[Mapping[str, Any]]) -> dict[tuple[str, str], str]:
        """(domain, code) -> record index as the evaluator reads it (8 digits), for every booking it can find."""
        found: dict[tuple[str, str], str] = {}
        for turn in log:
            for domain, field in BOOKED_KEY.items():
                state = turn.get("metadata", {}).get(domain, {})
                for entry in state.get("book", {}).get("booked", []):
                    code = _normal(entry.get("reference", ""))
                    candidates = self.index[domain].get(_normal(entry.get(field, "")))
                    if code and candidates and (domain, code) not in found:
                        found[domain, code] = f"{self._best(domain, candidates, state.get('semi', {})):08d}"
        return found

    def _best(self, domain: str, candidates: list[int], semi: Mapping[str, str]) -> int:
        def agreement(i: int) -> int:
            record = self.records[domain][i]
            return sum(
                _normal(semi.get(slot, "")) == _normal(record.get(slot, "")) for slot in DISAMBIGUATING_SLOTS
            )

        return max(candidates, key=agreement)


def _normal(value: Any) -> str:
    return str(value).strip().lower()


def _booking_domain(evaluator: Evaluator, intent: str, domain: str) -> str | None:
    """The domain a ``Ref`` act books in ``Evaluator.add_system_acts`` (None: it books nothing)."""
    intent, domain = intent.lower(), domain.lower()
    if domain == "booking" and intent == "book":
        return evaluator.cur_domain if evaluator.cur_domain in BOOKING_DOMAINS else None
    if domain == "train" and intent in ("offerbooked", "inform"):
        return "train"
    return None


def score_dialogue(
    dialogue: Mapping[str, Any],
    evaluator: Evaluator,
    resolver: ReferenceResolver,
    rng: random.Random,
    references: Counter | None = None,
) -> DialogueMetrics:
    """Feed one corpus dialogue to ``evaluator`` and score it; ``references`` counts what became of each code."""
    goal = corpus_goal(dialogue["goal"])
    evaluator.reset(goal)
    log = dialogue["log"]
    bookings = resolver.bookings(log)
    references = references if references is not None else Counter()
    for position, turn in enumerate(log):
        acts = corpus_acts(turn.get("dialog_act", {}))
        if position % 2 == 0:
            evaluator.add_user_acts(acts)
            continue
        for intent, domain, slot, value in acts:  # one act at a time: a booking act reads the current domain
            if slot.lower() == "ref":
                booking_domain = _booking_domain(evaluator, intent, domain)
                if booking_domain is not None:
                    index = bookings.get((booking_domain, str(value).strip().lower()))
                    references["resolved" if index is not None else "unresolved"] += 1
                    value = index if index is not None else value
            evaluator.add_system_acts([[intent, domain, slot, value]])
            _answer_request(goal, intent, domain, slot, value)
    for domain, domain_goal in goal.items():
        booked = evaluator.booked[domain]
        if "booked" in domain_goal and booked:
            domain_goal["booked"] = booked["Ref"] if isinstance(booked, Mapping) else booked
    rounds = (len(log) + 1) // 2
    return evaluator.dialogue_metrics(rounds, terminated=True, rng=rng)


def _answer_request(goal: dict[str, dict[str, Any]], intent: str, domain: str, slot: str, value: str) -> None:
    """What the agenda user does with an inform: the value answers the requested slot it names."""
    domain = domain.lower()
    if intent.lower() not in INFORM_INTENTS or domain not in goal:
        return
    requested = goal[domain].get("reqt")
    goal_slot = INFORMED_GOAL_SLOT.get(domain, {}).get(slot.lower())
    if requested is not None and goal_slot in requested:
        requested[goal_slot] = value


@dataclasses.dataclass
class HumanResult:
    summary: dict[str, Any]
    dialogues: list[dict[str, Any]]
    references: dict[str, int]


def score_corpus(corpus: Mapping[str, Mapping[str, Any]], db: Database, seed: int = 0) -> HumanResult:
    """Every dialogue of ``corpus`` scored; ``seed`` feeds the (result-neutral) taxi draws of the DB check."""
    evaluator, resolver, rng = Evaluator(db), ReferenceResolver(db), random.Random(seed)
    references: Counter = Counter()
    metrics: list[DialogueMetrics] = []
    for dialogue in corpus.values():
        metrics.append(score_dialogue(dialogue, evaluator, resolver, rng, references))
    per_dialogue = [
        {"id": dialogue_id, **dataclasses.asdict(m)} for dialogue_id, m in zip(corpus, metrics, strict=True)
    ]
    summary = summarize(metrics) | {
        "success_ci95": ci95([m.success for m in metrics]),
        "paper_success_ci95": ci95([m.paper_success for m in metrics]),
    }
    return HumanResult(summary, per_dialogue, dict(references))


@command(mw_data.DataError)
def main(argv: Sequence[str] | None = None) -> int:
    parser = ArgumentParser(prog="python -m baselines.human", description=__doc__.splitlines()[0])
    parser.add_argument("--split", default="test", choices=SPLITS)
    parser.add_argument("--out", help="JSON file for the summary and per-dialogue metrics")
    parser.add_argument("--data-dir")
    args = parser.parse_args(argv)
    reason = unwritable(args.out) if args.out else None
    if reason:
        parser.error(
            f"--out {args.out}: cannot be written: {reason}; expected a JSON file in a writable folder"
        )
    logging.basicConfig(level=logging.INFO, format="%(levelname)s %(name)s: %(message)s")
    data = mw_data.load(args.data_dir)
    if not data.has_split(args.split):
        raise mw_data.DataError(
            f"split {args.split!r} is not in {data.root}; expected one of "
            f"{[s for s in SPLITS if data.has_split(s)]}"
        )
    corpus = data.corpus(args.split)
    db = Database.from_data(data)
    result = score_corpus(corpus, db)
    summary = result.summary
    print(f"Human: {len(corpus)} corpus dialogues of the {args.split} split")
    print(format_table(summary))
    print(
        f"success 95% CI: ±{summary['success_ci95']:.3f} (ConvLab-2), ±{summary['paper_success_ci95']:.3f} (papers)"
    )
    print("booking references: " + ", ".join(f"{k} {v}" for k, v in sorted(result.references.items())))
    if args.out:
        payload = {
            "source": "human",
            "split": args.split,
            "summary": summary,
            "references": result.references,
            "dialogues": result.dialogues,
        }
        write_json(args.out, payload)
        print(f"wrote {args.out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
