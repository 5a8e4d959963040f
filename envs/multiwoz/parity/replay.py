"""Replay golden ConvLab-2 traces component by component and report parity.

``python -m envs.multiwoz.parity.replay TRACE.jsonl[.gz] [--limit N]``

Each component is a comparer registered in ``COMPONENTS``: given one recorded dialogue it yields checks
``(turn, [(field, expected, got), ...])``; a check matches when its list of differences is empty. Components are
teacher-forced from the trace (recorded goal, recorded system acts, recorded RNG positions), so one component's
error does not cascade into the next.

The last line is ``parity: goal X/N, init X/N, user-turns X/M, dst X/M, vector X/M, eval X/K``, counting:

* goal, init: dialogues (N); one check covers every field the trace records for it (``goal_raw`` and
  ``rng_after_goal``; ``goal_initial``, ``domain_ordering``, ``agenda_initial``, ``rng_after_init``).
* user-turns: rounds (M); a round matches when ``user``, ``terminated``, ``goal_after_user``,
  ``agenda_after_user`` and ``reward_user`` all do.
* dst: rounds (M); ``belief_state`` and ``request_state`` of a fresh tracker fed the recorded acts.
* vector: rounds (M); ``state_vec_nz`` and ``sys_act_vec_nz``, and on random-policy rounds the lexicalised
  ``sys`` of ``random_choice`` together with the RNG position it ends at.
* eval: checks (K = M + 15 N): each round's ``reward_eval``, and each of the 15 ``final`` fields the evaluator
  produces (``envs.multiwoz.parity.system.FINAL_FIELDS``) once per dialogue.

Exit status: 0 all checks match, 1 any mismatch, 2 unreadable input.
"""

from __future__ import annotations

import functools
import json
import random
import sys
from collections.abc import Callable, Iterable, Iterator, Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from envs.cli import ArgumentParser, command
from envs.multiwoz import data as mw_data
from envs.multiwoz.agenda import UserSimulator
from envs.multiwoz.db import Database
from envs.multiwoz.dst import RuleDST
from envs.multiwoz.evaluator import Evaluator
from envs.multiwoz.goal import GoalGenerator
from envs.multiwoz.parity.system import compare_dst, compare_eval, compare_vector
from envs.multiwoz.parity.traces import Mismatch, read_traces, rng_at, rng_position
from envs.multiwoz.vector import Vectoriser

Difference = tuple[str, Any, Any]  # (field, expected, got)
Check = tuple[int | None, list[Difference]]  # (round index or None for per-dialogue checks, differences)

DIALOGUE_FIELDS = (
    "seed",
    "goal_raw",
    "rng_after_goal",
    "goal_initial",
    "domain_ordering",
    "agenda_initial",
    "rng_after_init",
    "turns",
    "rng_end",
    "goal_final",
    "final",
)
TURN_FIELDS = (
    "t",
    "rng_before_user",
    "sys_in",
    "user",
    "terminated",
    "goal_after_user",
    "agenda_after_user",
    "reward_user",
    "rng_before_sys",
    "belief_state",
    "request_state",
    "state_vec_nz",
    "sys_act_vec_nz",
    "sys",
    "reward_eval",
)


class TraceFormatError(ValueError):
    """The trace file cannot be read as ConvLab-2 golden dialogues."""


class ReplayContext:
    """Shared, lazily built resources for the comparers (data, database, goal generator, user simulator)."""

    def __init__(self, data_dir: str | None = None):
        self._data_dir = data_dir

    @functools.cached_property
    def data(self) -> mw_data.MultiWozData:
        return mw_data.load(self._data_dir)

    @functools.cached_property
    def database(self) -> Database:
        return Database.from_data(self.data)

    @functools.cached_property
    def goal_generator(self) -> GoalGenerator:
        return GoalGenerator.from_data(self.data, self.database)

    @functools.cached_property
    def user(self) -> UserSimulator:
        return UserSimulator.from_data(self.data)

    @functools.cached_property
    def tracker(self) -> RuleDST:
        return RuleDST.from_data(self.data)

    @functools.cached_property
    def vectoriser(self) -> Vectoriser:
        return Vectoriser(self.data, self.database)

    @functools.cached_property
    def evaluator(self) -> Evaluator:
        return Evaluator(self.database)


Comparer = Callable[[dict[str, Any], ReplayContext], Iterable[Check]]


@dataclass(frozen=True)
class Component:
    name: str
    unit: str  # what one check is: "dialogues" or "turns"
    compare: Comparer


COMPONENTS: dict[str, Component] = {}


def component(name: str, unit: str) -> Callable[[Comparer], Comparer]:
    """Register a comparer; the report lists components in registration order."""

    def register(compare: Comparer) -> Comparer:
        COMPONENTS[name] = Component(name, unit, compare)
        return compare

    return register


def as_json(value: Any) -> Any:
    """The value as the trace stores it (tuples become lists), so comparisons are about content only."""
    return json.loads(json.dumps(value))


def differences(pairs: Iterable[tuple[str, Any, Any]]) -> list[Difference]:
    return [(name, expected, got) for name, expected, got in pairs if expected != got]


# ---------------------------------------------------------------------------------------------------------------
# Comparers


@component("goal", "dialogues")
def compare_goal(dialogue: dict[str, Any], ctx: ReplayContext) -> Iterator[Check]:
    """Both RNGs seeded with the dialogue's seed; the sampled goal and the RNG position after it."""
    seed = dialogue["seed"]
    rng = random.Random(seed)
    goal = ctx.goal_generator.sample(rng, np.random.RandomState(seed))
    yield (
        None,
        differences(
            [
                ("goal_raw", dialogue["goal_raw"], as_json(goal)),
                ("rng_after_goal", dialogue["rng_after_goal"], rng_position(rng, seed)),
            ]
        ),
    )


def start_user(dialogue: dict[str, Any], ctx: ReplayContext) -> tuple[UserSimulator, random.Random]:
    """The user started on the recorded goal, its RNG continuing from the recorded end of goal sampling."""
    rng = rng_at(dialogue["seed"], dialogue["rng_after_goal"])
    ctx.user.start(dialogue["goal_raw"], rng)
    return ctx.user, rng


@component("init", "dialogues")
def compare_init(dialogue: dict[str, Any], ctx: ReplayContext) -> Iterator[Check]:
    user, rng = start_user(dialogue, ctx)
    yield (
        None,
        differences(
            [
                ("goal_initial", dialogue["goal_initial"], as_json(user.domain_goals)),
                ("domain_ordering", dialogue["domain_ordering"], user.domains),
                ("agenda_initial", dialogue["agenda_initial"], user.agenda_items()),
                ("rng_after_init", dialogue["rng_after_init"], rng_position(rng, dialogue["seed"])),
            ]
        ),
    )


@component("user-turns", "turns")
def compare_user_turns(dialogue: dict[str, Any], ctx: ReplayContext) -> Iterator[Check]:
    """Every user turn on the recorded system acts, the RNG restored to where the recording had it."""
    user, _ = start_user(dialogue, ctx)
    for turn in dialogue["turns"]:
        if user.terminated:
            yield turn["t"], [("terminated", "a user turn", "the user had already ended the session")]
            continue
        user.rng = rng_at(dialogue["seed"], turn["rng_before_user"])
        acts = user.respond(turn["sys_in"])
        yield (
            turn["t"],
            differences(
                [
                    ("user", turn["user"], acts),
                    ("terminated", turn["terminated"], user.terminated),
                    ("goal_after_user", turn["goal_after_user"], as_json(user.domain_goals)),
                    ("agenda_after_user", turn["agenda_after_user"], user.agenda_items()),
                    ("reward_user", turn["reward_user"], user.reward),
                ]
            ),
        )


def checks_from_counts(matched: int, total: int, first: Mismatch | None) -> Iterator[Check]:
    """Checks from a system-side comparer that reports one dialogue as (matched, total, first mismatch): the first
    mismatch in detail, the dialogue's other mismatches by count only (the comparers stop describing after one)."""
    if first is not None:
        yield first.turn, [(first.field, first.expected, first.actual)]
        for _ in range(total - matched - 1):
            yield first.turn, [("a later check of this dialogue", "match", "mismatch")]
    for _ in range(matched):
        yield None, []


@component("dst", "turns")
def compare_dst_turns(dialogue: dict[str, Any], ctx: ReplayContext) -> Iterator[Check]:
    return checks_from_counts(*compare_dst(dialogue, ctx.tracker))


@component("vector", "turns")
def compare_vector_turns(dialogue: dict[str, Any], ctx: ReplayContext) -> Iterator[Check]:
    return checks_from_counts(*compare_vector(dialogue, ctx.vectoriser))


@component("eval", "checks")
def compare_eval_checks(dialogue: dict[str, Any], ctx: ReplayContext) -> Iterator[Check]:
    """Per-round ``reward_eval`` and the ``final`` fields; a mismatch on turn None is in ``final``."""
    return checks_from_counts(*compare_eval(dialogue, ctx.evaluator))


# ---------------------------------------------------------------------------------------------------------------
# Running and reporting


@dataclass
class ReportedMismatch:
    """What the report prints of a component's first failing check: every difference of that check."""

    seed: int
    turn: int | None
    differences: list[Difference]


@dataclass
class Tally:
    component: Component
    checked: int = 0
    matched: int = 0
    first_mismatch: ReportedMismatch | None = None
    mismatched_seeds: list[int] = field(default_factory=list)

    def add(self, seed: int, check: Check) -> None:
        turn, diffs = check
        self.checked += 1
        if not diffs:
            self.matched += 1
            return
        if not self.mismatched_seeds or self.mismatched_seeds[-1] != seed:
            self.mismatched_seeds.append(seed)
        if self.first_mismatch is None:
            self.first_mismatch = ReportedMismatch(seed, turn, diffs)


def validate(dialogue: Any, index: int) -> None:
    """Fail with one line naming the first missing field, rather than deep inside a comparer."""
    if not isinstance(dialogue, dict):
        raise TraceFormatError(f"line {index + 1}: expected a JSON object, got {type(dialogue).__name__}")
    missing = [name for name in DIALOGUE_FIELDS if name not in dialogue]
    if missing:
        raise TraceFormatError(f"line {index + 1} (seed {dialogue.get('seed')}): missing field(s) {missing}")
    if not isinstance(dialogue["turns"], list) or not all(
        isinstance(turn, dict) for turn in dialogue["turns"]
    ):
        raise TraceFormatError(f"seed {dialogue['seed']}: 'turns' must be a list of JSON objects")
    for turn in dialogue["turns"]:
        missing = [name for name in TURN_FIELDS if name not in turn]
        if missing:
            raise TraceFormatError(
                f"seed {dialogue['seed']} turn {turn.get('t')}: missing field(s) {missing}"
            )


def replay(
    path: str,
    limit: int | None = None,
    components: Sequence[str] | None = None,
    ctx: ReplayContext | None = None,
) -> dict[str, Tally]:
    """Run the chosen components (all by default) over the trace file; a tally per component."""
    ctx = ctx or ReplayContext()
    chosen = [COMPONENTS[name] for name in (components or COMPONENTS)]
    tallies = {comp.name: Tally(comp) for comp in chosen}
    count = 0
    try:
        for index, dialogue in enumerate(read_traces(path, limit)):
            validate(dialogue, index)
            count += 1
            for comp in chosen:
                tally = tallies[comp.name]
                try:
                    for check in comp.compare(dialogue, ctx):
                        tally.add(dialogue["seed"], check)
                except (KeyError, IndexError, TypeError, AttributeError, ValueError) as exc:
                    raise TraceFormatError(
                        f"seed {dialogue['seed']}: the {comp.name} replay cannot use the recorded "
                        f"values ({type(exc).__name__}: {exc})"
                    ) from exc
    except (OSError, EOFError, UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise TraceFormatError(f"cannot read {path}: {exc}") from exc
    if count == 0:
        raise TraceFormatError(f"{path} holds no dialogues")
    return tallies


def _brief(value: Any, width: int = 1500) -> str:
    text = json.dumps(value, ensure_ascii=False)
    return text if len(text) <= width else text[:width] + f"... ({len(text)} chars)"


def format_report(tallies: dict[str, Tally]) -> str:
    """Table of matches per component, the first mismatch of each in detail, then the one-line summary."""
    lines = [f"{'component':<12} {'matched':>8} {'checked':>8} {'unit':<10} mismatched seeds"]
    for tally in tallies.values():
        seeds = ", ".join(map(str, tally.mismatched_seeds[:10]))
        if len(tally.mismatched_seeds) > 10:
            seeds += f", ... ({len(tally.mismatched_seeds)} seeds)"
        lines.append(
            f"{tally.component.name:<12} {tally.matched:>8} {tally.checked:>8} "
            f"{tally.component.unit:<10} {seeds or '-'}"
        )
    for tally in tallies.values():
        mismatch = tally.first_mismatch
        if mismatch is None:
            continue
        where = f"seed {mismatch.seed}" + ("" if mismatch.turn is None else f", turn {mismatch.turn}")
        lines.append(f"first {tally.component.name} mismatch: {where}")
        for name, expected, got in mismatch.differences:
            lines.append(f"  field {name}")
            lines.append(f"    expected: {_brief(expected)}")
            lines.append(f"    got:      {_brief(got)}")
    lines.append(summary_line(tallies))
    return "\n".join(lines)


def summary_line(tallies: dict[str, Tally]) -> str:
    return "parity: " + ", ".join(f"{t.component.name} {t.matched}/{t.checked}" for t in tallies.values())


def all_match(tallies: dict[str, Tally]) -> bool:
    return all(t.matched == t.checked for t in tallies.values())


@command(TraceFormatError, mw_data.DataError)
def main(argv: Sequence[str] | None = None) -> int:
    parser = ArgumentParser(prog="python -m envs.multiwoz.parity.replay", description=__doc__.splitlines()[0])
    parser.add_argument("trace", help="golden trace file (.jsonl or .jsonl.gz)")
    parser.add_argument("--limit", type=int, default=None, help="replay only the first N dialogues")
    parser.add_argument(
        "--components",
        nargs="+",
        choices=list(COMPONENTS),
        default=None,
        help="components to replay (default: all)",
    )
    parser.add_argument("--data-dir", default=None, help="MultiWOZ data folder (default: resolved as usual)")
    args = parser.parse_args(argv)
    if args.limit is not None and args.limit < 1:
        parser.error(f"--limit {args.limit}: expected a positive number of dialogues")
    tallies = replay(args.trace, args.limit, args.components, ReplayContext(args.data_dir))
    print(format_report(tallies))
    return 0 if all_match(tallies) else 1


if __name__ == "__main__":
    sys.exit(main())
