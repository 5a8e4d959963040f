"""The ``processes`` engine: each attempt of a trial is one child process on this machine, no Ray.

A child writes its output to the trial's ``trial.log`` and, on success, its payload to ``trial_record.json``;
the driver waits for any child to end, records the trial or starts it again (from its ``last.pt``) while it
has retries left, and keeps ``max_concurrent`` children running.
"""

from __future__ import annotations

import json
import logging
import multiprocessing
import multiprocessing.connection
import os
import sys
from collections import Counter, deque
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

from envs.fileio import write_json
from experiments.sweep.spec import SweepSpec, Trial
from experiments.sweep.trial import (
    ERROR_FILE,
    LOG_FILE,
    start_worker_logging,
    train_and_evaluate,
    write_error,
)
from vrb.algorithms import make_config

if TYPE_CHECKING:
    from experiments.sweep.recorder import Recorder

logger = logging.getLogger("experiments.sweep")

PAYLOAD_FILE = "trial_record.json"  # a finished trial's metrics and versions (this engine's channel)


def run_trial_process(params: Mapping[str, Any]) -> None:
    """A child's whole life: its output to ``trial.log``, the record to ``trial_record.json`` on success."""
    out = Path(params["out"])
    out.mkdir(parents=True, exist_ok=True)
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
    running: dict[int, tuple[multiprocessing.process.BaseProcess, Trial, Path]] = {}
    try:
        while queue or running:
            while queue and len(running) < slots:
                trial = queue.popleft()
                params = trial.params(sweep_dir, spec.evaluation)
                out = Path(params["out"])
                # what an earlier attempt left says nothing of this one
                for stale in (PAYLOAD_FILE, ERROR_FILE):
                    (out / stale).unlink(missing_ok=True)
                child = context.Process(target=run_trial_process, args=(params,), name=trial.trial_id)
                child.start()
                running[child.sentinel] = (child, trial, out)
            for sentinel in multiprocessing.connection.wait(list(running)):
                child, trial, out = running.pop(sentinel)
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
                error_path = out / ERROR_FILE
                error = error_path.read_text() if error_path.is_file() else ""
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
        for child, _, _ in running.values():
            child.terminate()
        for child, _, _ in running.values():
            child.join()
