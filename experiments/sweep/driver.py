"""The sweep's driver: which trials of a spec the store still lacks, the caches they share, the engine that runs
them (each ended trial recorded by ``experiments.sweep.recorder.Recorder``). One driver per sweep folder: it
holds ``sweep.lock`` there while it runs, and a second driver on the same folder is refused, naming the first's
pid (two drivers would run the same pending trials)."""

from __future__ import annotations

import dataclasses
import logging
from collections.abc import Collection, Sequence
from datetime import UTC, datetime
from pathlib import Path

from envs.fileio import LockHeld, hold_lock
from experiments.store import ResultStore
from experiments.sweep.overrides import describe
from experiments.sweep.processes import run_in_processes
from experiments.sweep.ray_engine import run_on_ray
from experiments.sweep.recorder import Recorder
from experiments.sweep.spec import SweepSpec, Trial
from vrb.errors import UsageError

logger = logging.getLogger("experiments.sweep")

ENGINES = ("ray", "processes")
SWEEP_LOCK = "sweep.lock"
COMMANDS_LOG = "commands.log"


def warm_caches(trials: Sequence[Trial]) -> None:
    """Build the corpus expert data and the trained VHUS once here, not in every concurrent first trial."""
    from envs.dialogue_env import build_world, make_user
    from vrb.expert import load_expert

    for data_dir in sorted({t.config.data_dir for t in trials}):
        world = build_world(data_dir or None)
        for split in (world.data.training_split(), "test"):
            load_expert(world.data, split)
        if any(t.config.simulator == "vhus" and t.config.data_dir == data_dir for t in trials):
            make_user("vhus", world)


def log_command(sweep_dir: Path, command: str) -> None:
    """Append a command line, stamped with the time (UTC), to the sweep folder's ``commands.log``."""
    with open(sweep_dir / COMMANDS_LOG, "a") as f:
        f.write(f"{datetime.now(UTC).isoformat(timespec='seconds')}  {command}\n")


@dataclasses.dataclass
class SweepOutcome:
    total: int
    skipped: list[str]
    ran: list[str]
    failed: list[str]


def run_sweep(
    spec: SweepSpec,
    sweep_dir: Path,
    *,
    address: str | None = None,
    max_concurrent: int | None = None,
    max_retries: int | None = None,
    skip_failed: bool = False,
    engine: str = "ray",
    command: str | None = None,
    trial_ids: Collection[str] | None = None,
) -> SweepOutcome:
    """Run every trial of ``spec`` (those named in ``trial_ids``, when given) the store in ``sweep_dir`` does not
    have as finished; ``command`` (the command line) is appended to ``commands.log`` once the sweep folder is
    this driver's."""
    if engine not in ENGINES:
        raise ValueError(f"engine {engine!r}: expected one of {ENGINES}")
    if engine == "processes" and address:
        raise ValueError("--address names a Ray cluster; it needs --engine ray")
    sweep_dir = sweep_dir.resolve()
    sweep_dir.mkdir(parents=True, exist_ok=True)
    try:
        with hold_lock(sweep_dir / SWEEP_LOCK):
            if command is not None:  # the results are committed with the commands behind them
                log_command(sweep_dir, command)
            return _run_sweep(
                spec, sweep_dir, address, max_concurrent, max_retries, skip_failed, engine, trial_ids
            )
    except LockHeld as exc:
        raise UsageError(
            f"sweep folder {sweep_dir} is in use by {exc.holder or 'another driver'}: wait for that sweep "
            "to end (a re-run then resumes what it left)"
        ) from None


def _run_sweep(
    spec: SweepSpec,
    sweep_dir: Path,
    address: str | None,
    max_concurrent: int | None,
    max_retries: int | None,
    skip_failed: bool,
    engine: str,
    trial_ids: Collection[str] | None,
) -> SweepOutcome:
    store = ResultStore(sweep_dir)
    trials = [trial for trial in spec.trials() if trial_ids is None or trial.trial_id in trial_ids]
    done = store.finished_ids()
    if skip_failed:
        done |= {record.trial_id for record in store.records("failed")}
    pending = [trial for trial in trials if trial.trial_id not in done]
    skipped = [trial.trial_id for trial in trials if trial.trial_id in done]
    logger.info(
        "sweep %s: %d trials, %d already in the store, %d to run (engine: %s)%s",
        spec.name,
        len(trials),
        len(skipped),
        len(pending),
        engine,
        f"; command-line overrides: {describe(spec.overrides)}" if spec.overrides else "",
    )
    record = Recorder(store, pending, spec.evaluation, spec.overrides)
    outcome = SweepOutcome(
        total=len(trials), skipped=skipped, ran=[t.trial_id for t in pending], failed=record.failed
    )
    if not pending:
        return outcome

    if address is None:
        warm_caches(pending)
    else:
        logger.warning(
            "on a cluster, a node without the expert-data and VHUS caches builds them in each "
            "trial; run `python -m envs.vhus.train` on every node first when the sweep uses VHUS"
        )
    retries = spec.max_retries if max_retries is None else max_retries
    if engine == "ray":
        run_on_ray(spec, sweep_dir, pending, record, max_concurrent, retries, address)
    else:
        run_in_processes(spec, sweep_dir, pending, record, max_concurrent, retries)
    return outcome
