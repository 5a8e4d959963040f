"""The Ray Tune engine: each trial is a Tune trial (on this machine's Ray or a cluster's), and Tune restarts a
killed attempt; a callback on the driver turns each ended trial into its row in the store."""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from datetime import UTC, datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any

from envs.fileio import dumps_json
from experiments.sweep.spec import SweepSpec, Trial
from experiments.sweep.trial import (
    ERROR_FILE,
    hold_trial,
    start_worker_logging,
    train_and_evaluate,
    write_error,
)
from vrb.algorithms import make_config

if TYPE_CHECKING:
    from experiments.sweep.recorder import Recorder

# a finished trial's metrics and versions travel to the driver as one string under this key
PAYLOAD_KEY = "trial_record_json"


def run_trial(trial_config: Mapping[str, Any], table: Mapping[str, Mapping[str, Any]]) -> None:
    """Inside a Ray worker: train (resuming a killed attempt from ``last.pt``), evaluate ``best.pt``, report
    the record to Tune."""
    from ray import tune

    params = table[trial_config["trial_id"]]
    start_worker_logging()
    out = Path(params["out"])
    with hold_trial(out):  # the error file too is written while the attempt holds its folder
        try:
            payload = train_and_evaluate(make_config(params["config"]), out, **params["evaluation"])
        except Exception:
            # Ray's own error file can still be unwritten when the driver hears of the failure; this one is not.
            write_error(out)
            raise
    tune.report({"success": payload["metrics"]["success"], PAYLOAD_KEY: dumps_json(payload, indent=None)})


def _store_callback(record: Recorder):
    from ray import tune

    class StoreCallback(tune.Callback):
        """Appends each ended trial to the store from the driver (the one writer, wherever trials ran)."""

        def on_trial_complete(self, iteration, trials, trial, **info):
            known = trial.config["trial_id"]
            raw = (trial.last_result or {}).get(PAYLOAD_KEY)
            if raw is None:
                record(
                    known,
                    "failed",
                    trial.num_failures,
                    {},
                    "the trial ended without reporting its evaluation",
                )
            else:
                record(known, "finished", trial.num_failures + 1, json.loads(raw), "")

        def on_trial_error(self, iteration, trials, trial, **info):
            try:
                error = str(trial.get_error() or "")
            except Exception as exc:  # the error file may be unreadable; the failure itself is what matters
                error = f"(error text unavailable: {exc})"
            known = trial.config["trial_id"]
            if not error:
                written = record.sweep_dir / "trials" / known / ERROR_FILE
                error = written.read_text() if written.is_file() else ""
            record(known, "failed", trial.num_failures, {}, error[-4000:] or "the trial's process died")

    return StoreCallback()


def run_on_ray(
    spec: SweepSpec,
    sweep_dir: Path,
    pending: Sequence[Trial],
    record: Recorder,
    max_concurrent: int | None,
    retries: int,
    address: str | None,
) -> None:
    import ray
    from ray import tune

    started_ray = not ray.is_initialized()
    if started_ray and address:
        ray.init(address=address)
    elif started_ray:
        ray.init(include_dashboard=False, configure_logging=False)
    try:
        table = {trial.trial_id: trial.params(sweep_dir, spec.evaluation) for trial in pending}
        trainable = tune.with_resources(tune.with_parameters(run_trial, table=table), {"cpu": spec.cpus})
        tuner = tune.Tuner(
            trainable,
            param_space={"trial_id": tune.grid_search(list(table))},
            tune_config=tune.TuneConfig(max_concurrent_trials=max_concurrent, reuse_actors=False),
            run_config=tune.RunConfig(
                name=f"{spec.name}-{datetime.now(UTC):%Y%m%dT%H%M%S}",
                storage_path=str(sweep_dir / "ray"),
                failure_config=tune.FailureConfig(max_failures=retries),
                callbacks=[_store_callback(record)],
            ),
        )
        tuner.fit()
    finally:
        if started_ray:
            ray.shutdown()
