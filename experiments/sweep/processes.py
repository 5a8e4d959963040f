"""The ``processes`` engine: each attempt of a trial is one child process on this machine, no Ray.

A child writes its output to the trial's ``trial.log`` (appended: every attempt's output stays, each stamped
with its attempt number) and, on success, its payload to ``trial_record.json``; the driver waits for any child
to end, records the trial or starts it again (from its ``last.pt``) while it has retries left, and keeps
``max_concurrent`` children running.

A child takes its trial folder's lock before it writes anything there (``trial.hold_trial``), so it never
writes beside an earlier attempt that still runs, and (on Linux) asks the kernel to kill it when the driver
dies, so a killed driver leaves no attempt running beside the next run's.
"""

from __future__ import annotations

import contextlib
import ctypes
import json
import logging
import multiprocessing
import multiprocessing.connection
import os
import signal
import sys
import time
from collections import Counter, deque
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

from envs.fileio import write_json
from experiments.sweep.spec import SweepSpec, Trial
from experiments.sweep.trial import (
    ERROR_FILE,
    LOG_FILE,
    hold_trial,
    start_worker_logging,
    train_and_evaluate,
    write_error,
)
from vrb.algorithms import make_config
from vrb.workers import limited_threads

if TYPE_CHECKING:
    from experiments.sweep.recorder import Recorder

logger = logging.getLogger("experiments.sweep")

PAYLOAD_FILE = "trial_record.json"  # a finished trial's metrics and versions (this engine's channel)


PR_SET_PDEATHSIG = 1  # prctl option (linux/prctl.h)


def die_with_driver(driver_pid: int) -> None:
    """Linux: have the kernel kill this process when the driver dies (``kill -9`` included)."""
    if sys.platform.startswith("linux"):
        # without prctl, the trial lock still keeps a new attempt from writing beside an orphan
        with contextlib.suppress(OSError, AttributeError):
            ctypes.CDLL(None, use_errno=True).prctl(PR_SET_PDEATHSIG, signal.SIGKILL)
    if os.getppid() != driver_pid:  # the driver died before that took effect
        os._exit(1)


def run_trial_process(params: Mapping[str, Any], driver_pid: int | None = None) -> None:
    """A child's whole life: the trial folder's lock, its output to ``trial.log``, the record to
    ``trial_record.json`` on success."""
    if driver_pid is not None:
        die_with_driver(driver_pid)
    out = Path(params["out"])
    with hold_trial(out):  # before anything is written there
        (out / PAYLOAD_FILE).unlink(missing_ok=True)  # an earlier attempt's says nothing of this one
        with open(out / LOG_FILE, "a") as log:  # the duplicated descriptors outlive this handle
            os.dup2(log.fileno(), sys.stdout.fileno())
            os.dup2(log.fileno(), sys.stderr.fileno())
        start_worker_logging()
        try:
            payload = train_and_evaluate(
                make_config(params["config"]), out, engine="processes", **params["evaluation"]
            )
        except BaseException:
            write_error(out)
            raise
        write_json(out / PAYLOAD_FILE, payload, indent=None)


def run_in_processes(
    spec: SweepSpec,
    sweep_dir: Path,
    pending: Sequence[Trial],
    record: Recorder,
    max_concurrent: int | None,
    retries: int,
) -> None:
    """Keep up to ``max_concurrent`` trials running; a child that dies is restarted until its retries are spent."""
    # spawn, not fork: the driver holds torch state that a fork would copy mid-flight
    context = multiprocessing.get_context("spawn")
    slots = max_concurrent or max(1, int((os.cpu_count() or 1) // max(spec.cpus, 1)))
    queue = deque(pending)
    failures: Counter[str] = Counter()
    running: dict[int, tuple[multiprocessing.process.BaseProcess, Trial, Path, float]] = {}
    try:
        while queue or running:
            while queue and len(running) < slots:
                trial = queue.popleft()
                params = trial.params(sweep_dir, spec.evaluation)
                out = Path(params["out"])
                child = context.Process(
                    target=run_trial_process, args=(params, os.getpid()), name=trial.trial_id
                )
                started = time.time()
                with limited_threads(max(1, int(spec.cpus))):  # a trial's BLAS threads: its share of the CPUs
                    child.start()
                running[child.sentinel] = (child, trial, out, started)
            for sentinel in multiprocessing.connection.wait(list(running)):
                child, trial, out, started = running.pop(sentinel)
                child.join()
                payload_path = out / PAYLOAD_FILE
                if child.exitcode == 0 and payload_path.is_file():
                    record(
                        trial,
                        "finished",
                        failures[trial.trial_id] + 1,
                        json.loads(payload_path.read_text()),
                        "",
                    )
                    continue
                failures[trial.trial_id] += 1
                error_path = out / ERROR_FILE  # only this attempt's: an older one's is not its reason
                fresh = error_path.is_file() and error_path.stat().st_mtime >= started - 1
                error = error_path.read_text() if fresh else ""
                if failures[trial.trial_id] <= retries:
                    logger.warning(
                        "trial %s: attempt %d ended with exit code %s; restarting it from its last.pt",
                        trial.trial_id,
                        failures[trial.trial_id],
                        child.exitcode,
                    )
                    queue.appendleft(trial)
                else:
                    reason = error[-4000:] or f"the trial's process died (exit code {child.exitcode})"
                    record(trial, "failed", failures[trial.trial_id], {}, reason)
    finally:  # an interrupted driver leaves no orphans; their trials resume from last.pt on the next run
        for child, *_ in running.values():
            child.terminate()
        for child, *_ in running.values():
            child.join()
