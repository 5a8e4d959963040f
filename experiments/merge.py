"""Gather a sweep run in shares into one folder: ``python -m experiments.merge INTO FROM [FROM ...]``.

    python -m experiments.merge runs/paper_table runs/paper_table-16core runs/paper_table-2core

A sweep split over machines (``experiments.sweep --trials``, each machine its own ``--out``) leaves one store
per share. This brings every FROM folder's rows that INTO lacks into INTO's store (each keeps its own
``recorded_at``), with their trial folders (checkpoints, TensorBoard events, logs) and FROM's
``commands.log`` lines, so that ``experiments.report INTO`` sees the whole sweep. A trial INTO has finished
keeps INTO's row: the same trial finished in two folders with different metrics is named, not merged twice.
Merging again brings nothing new. INTO is held as a sweep driver holds it: no sweep may run there meanwhile.
"""

from __future__ import annotations

import json
import logging
import shlex
import shutil
import sys
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path

from envs.cli import ArgumentParser, command
from envs.fileio import LockHeld, hold_lock
from experiments.store import STORE_NAME, ResultStore, TrialRecord
from experiments.sweep.driver import COMMANDS_LOG, SWEEP_LOCK, log_command
from vrb.errors import UsageError

logger = logging.getLogger("experiments.merge")

TRIALS = "trials"
NOT_COPIED = ("run.lock",)  # a lock names its holder's pid on another machine: meaningless here


@dataclass
class MergeOutcome:
    rows: int = 0  # store rows appended (finished and failed)
    folders: int = 0  # trial folders copied
    already: int = 0  # rows INTO had
    conflicts: list[str] = field(default_factory=list)  # trials finished in both with other metrics


def _row_key(record: TrialRecord) -> tuple[str, str, str, str]:
    """A store row as merging compares it: trial, status, when it was recorded and what it measured."""
    return record.trial_id, record.status, record.recorded_at, json.dumps(record.metrics, sort_keys=True)


def merge(into: Path, sources: Sequence[Path], command: str | None = None) -> MergeOutcome:
    """Bring each source folder's rows and trial folders that ``into`` lacks; ``into`` is created if missing.
    ``command`` (the command line) is appended to ``into``'s ``commands.log`` after the sources' lines."""
    for source in sources:
        if source.resolve() == into.resolve():
            raise UsageError(f"{source}: the folder merged into; name each folder once")
        if not (source / STORE_NAME).is_file():
            raise UsageError(
                f"{source}: no {STORE_NAME}; expected a sweep folder written by experiments.sweep"
            )
    into.mkdir(parents=True, exist_ok=True)
    outcome = MergeOutcome()
    try:
        with hold_lock(into / SWEEP_LOCK):
            store = ResultStore(into)
            for source in sources:
                _merge_one(store, into, source, outcome)
            if command is not None:
                log_command(into, command)
    except LockHeld as exc:
        raise UsageError(
            f"sweep folder {into} is in use by {exc.holder or 'a sweep driver'}: merge once that sweep has ended"
        ) from None
    return outcome


def _merge_one(store: ResultStore, into: Path, source: Path, outcome: MergeOutcome) -> None:
    have = store.records()
    present = {_row_key(record) for record in have}
    finished = {record.trial_id: record for record in have if record.status == "finished"}
    for record in ResultStore.open_existing(source).records():
        if _row_key(record) in present:
            outcome.already += 1
            continue
        kept = finished.get(record.trial_id)
        if record.status == "finished" and kept is not None:
            if kept.metrics != record.metrics:
                outcome.conflicts.append(f"{record.trial_id} ({source})")
            else:
                outcome.already += 1
            continue
        store.append(TrialRecord(**{**record.__dict__, "row": None}))
        outcome.rows += 1
        if record.status == "finished":
            finished[record.trial_id] = record
        folder, target = source / TRIALS / record.trial_id, into / TRIALS / record.trial_id
        if folder.is_dir() and not target.exists():
            shutil.copytree(folder, target, ignore=shutil.ignore_patterns(*NOT_COPIED))
            outcome.folders += 1
    log = source / COMMANDS_LOG
    if log.is_file():
        kept_lines = (
            set((into / COMMANDS_LOG).read_text().splitlines()) if (into / COMMANDS_LOG).is_file() else set()
        )
        new = [line for line in log.read_text().splitlines() if line and line not in kept_lines]
        with open(into / COMMANDS_LOG, "a") as f:
            f.writelines(line + "\n" for line in new)


@command(UsageError, FileNotFoundError)
def main(argv: Sequence[str] | None = None) -> int:
    parser = ArgumentParser(prog="python -m experiments.merge", description=__doc__.splitlines()[0])
    parser.add_argument("into", help="the sweep folder to gather into (created if missing)")
    parser.add_argument(
        "sources", nargs="+", metavar="from", help="sweep folders written by experiments.sweep"
    )
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(levelname)s %(name)s: %(message)s")
    into = Path(args.into)
    command_line = shlex.join(
        ["python", "-m", "experiments.merge", *(argv if argv is not None else sys.argv[1:])]
    )
    outcome = merge(into, [Path(source) for source in args.sources], command_line)
    for conflict in outcome.conflicts:
        logger.warning("kept %s's row of %s: the other folder finished it with other metrics", into, conflict)
    finished = len(ResultStore(into).finished_ids())
    print(
        f"merged into {into}: {outcome.rows} rows and {outcome.folders} trial folders added, {outcome.already} "
        f"already there, {len(outcome.conflicts)} conflicting; {finished} finished trials in {into / STORE_NAME}"
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
