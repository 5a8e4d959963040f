"""The Ray Tune engine: each trial is a Tune trial (on this machine's Ray or a cluster's), and Tune restarts a
killed attempt; a callback on the driver turns each ended trial into its row in the store.

A Ray the driver starts ends with it (``ray_session``): Ctrl-C (SIGINT) and SIGTERM end the driver through
``ray.shutdown()``, so none of Ray's processes outlives it (Tune's own Ctrl-C handling, which ends the sweep as if
it had finished, is turned off: the command line reports the interruption in one line, exit code 130; SIGTERM
exits with 143). A ``kill -9`` cannot be caught: Ray's processes then notice the driver's death themselves.
"""

from __future__ import annotations

import json
import os
import signal
import sys
import threading
from collections.abc import Iterator, Mapping, Sequence
from contextlib import contextmanager
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


def plain_logs_in_files() -> None:
    """Where the driver's output goes to a file, Ray writes the trials' lines without colour codes (prefixes,
    deduplication notes) and keeps each of them (a trial's validation lines are few). Ray reads both settings
    when it is imported, so this runs first."""
    if not sys.stderr.isatty():
        os.environ.setdefault("RAY_COLOR_PREFIX", "0")
        os.environ.setdefault("RAY_DEDUP_LOGS", "0")


@contextmanager
def ray_session(address: str | None) -> Iterator[None]:
    """Ray for the block: the cluster at ``address``, the one this process runs already, or a local one started
    here and shut down when the block ends, however it ends (an exception, Ctrl-C, SIGTERM)."""
    plain_logs_in_files()
    import ray

    main_thread = threading.current_thread() is threading.main_thread()
    previous_sigint_setting = os.environ.get("TUNE_DISABLE_SIGINT_HANDLER")
    os.environ["TUNE_DISABLE_SIGINT_HANDLER"] = "1"  # Ctrl-C: a KeyboardInterrupt, through the finally below
    previous_sigterm = signal.getsignal(signal.SIGTERM) if main_thread else None
    started = not ray.is_initialized()
    terminated: list[int] = []

    def exit_on_sigterm(signum: int, frame: Any) -> None:
        terminated.append(signum)
        raise SystemExit(128 + signum)  # unwinds through the shutdown below; the shell's code for SIGTERM

    try:
        if started and address:
            ray.init(address=address)
        elif started:
            ray.init(include_dashboard=False, configure_logging=False)
        if main_thread:  # after ray.init, which installs handlers of its own
            signal.signal(signal.SIGTERM, exit_on_sigterm)
        yield
    except SystemExit:
        if terminated:  # a SIGTERM that met Ray's wait() comes out of it as exit code 1
            raise SystemExit(128 + terminated[0]) from None
        raise
    finally:
        try:
            if started:
                ray.shutdown()
        finally:
            if main_thread:
                signal.signal(signal.SIGTERM, previous_sigterm)
            if previous_sigint_setting is None:
                os.environ.pop("TUNE_DISABLE_SIGINT_HANDLER", None)
            else:
                os.environ["TUNE_DISABLE_SIGINT_HANDLER"] = previous_sigint_setting


def run_on_ray(
    spec: SweepSpec,
    sweep_dir: Path,
    pending: Sequence[Trial],
    record: Recorder,
    max_concurrent: int | None,
    retries: int,
    address: str | None,
) -> None:
    plain_logs_in_files()
    from ray import tune

    with ray_session(address):
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
