"""The sweep's driver: which trials of a spec the store still lacks, the caches they share, the engine that runs
them (each ended trial recorded by ``experiments.sweep.recorder.Recorder``)."""

from __future__ import annotations

import dataclasses
import logging
from collections.abc import Sequence
from pathlib import Path

from experiments.store import ResultStore
from experiments.sweep.processes import run_in_processes
from experiments.sweep.ray_engine import run_on_ray
from experiments.sweep.recorder import Recorder
from experiments.sweep.spec import SweepSpec, Trial

logger = logging.getLogger("experiments.sweep")

ENGINES = ("ray", "processes")


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
) -> SweepOutcome:
    """Run every trial of ``spec`` the store in ``sweep_dir`` does not have as finished."""
    if engine not in ENGINES:
        raise ValueError(f"engine {engine!r}: expected one of {ENGINES}")
    if engine == "processes" and address:
        raise ValueError("--address names a Ray cluster; it needs --engine ray")
    sweep_dir = sweep_dir.resolve()
    store = ResultStore(sweep_dir)
    trials = spec.trials()
    done = store.finished_ids()
    if skip_failed:
        done |= {record.trial_id for record in store.records("failed")}
    pending = [trial for trial in trials if trial.trial_id not in done]
    skipped = [trial.trial_id for trial in trials if trial.trial_id in done]
    logger.info(
        "sweep %s: %d trials, %d already in the store, %d to run (engine: %s)",
        spec.name,
        len(trials),
        len(skipped),
        len(pending),
        engine,
    )
    record = Recorder(store, pending, spec.evaluation)
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
