"""One attempt of one trial, wherever it runs: train (resuming from ``last.pt``), evaluate ``best.pt``, and the
payload (metrics and versions) that becomes the trial's row in the store.

An attempt holds its trial folder's lock for its whole life (``hold_trial``: the lock of ``vrb.train``'s run
folder, which the run inside takes again): an attempt whose folder an earlier attempt still uses (one whose
driver was killed, say) waits for it to end instead of writing beside it. Each attempt appends a line to
``attempts.jsonl`` and stamps the log with its number, pid and whether it resumed."""

from __future__ import annotations

import logging
import os
import platform
import shutil
import socket
import time
import traceback
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from envs.fileio import atomic_write_text, dumps_json, hold_lock, write_json
from vrb.config import TrainConfig

ERROR_FILE = "error.txt"  # the last attempt's traceback, written by the trial itself
ATTEMPTS_FILE = "attempts.jsonl"  # one line per attempt: pid, host, start time (who to kill, who ran it)
EVALUATION_FILE = "evaluation.json"  # the summary and every dialogue of the evaluation of best.pt
LOG_FILE = "trial.log"  # a child process's stdout and stderr under the processes engine (open while it runs)
LOG_FORMAT = "%(asctime)s %(levelname)s %(name)s: %(message)s"
LAST_PREFIX = "last_"  # metrics of last.pt: last_paper_success, ...
TRIAL_LOCK = "run.lock"  # vrb.train.RUN_LOCK (not imported here: vrb.train pulls in torch and TensorBoard)

logger = logging.getLogger("experiments.sweep")


@contextmanager
def hold_trial(out: Path) -> Iterator[None]:
    """Hold the trial folder's lock for the block, waiting while another process (an earlier attempt still
    running) holds it; nested holds in one process are free."""
    out.mkdir(parents=True, exist_ok=True)

    def say(holder: str) -> None:
        logger.warning(
            "trial folder %s is in use by %s (an earlier attempt still running?); waiting for it to end",
            out,
            holder or "another process",
        )

    with hold_lock(out / TRIAL_LOCK, wait=True, on_wait=say):
        yield


def start_worker_logging() -> None:
    """A trial's process logs at INFO, without progress bars (many trials' bars interleave into noise)."""
    os.environ["TQDM_DISABLE"] = "1"
    logging.basicConfig(level=logging.INFO, format=LOG_FORMAT)


def write_error(out: Path) -> None:
    """The exception being handled, to ``ERROR_FILE``: the driver reads it when the attempt is over."""
    out.mkdir(parents=True, exist_ok=True)
    atomic_write_text(out / ERROR_FILE, traceback.format_exc())


def train_and_evaluate(
    cfg: TrainConfig, out: Path, *, dialogues: int, first_seed: int, engine: str = "ray"
) -> dict[str, Any]:
    with hold_trial(out):
        return _attempt(cfg, out, dialogues, first_seed, engine)


def _attempt(cfg: TrainConfig, out: Path, dialogues: int, first_seed: int, engine: str) -> dict[str, Any]:
    import torch

    from envs.dialogue_env import DialogueEnv
    from envs.multiwoz import data as mw_data
    from vrb.acting import run_dialogues
    from vrb.checkpoint import code_version
    from vrb.evaluate import ci95, load_agent
    from vrb.train import run

    (out / ERROR_FILE).unlink(missing_ok=True)  # an earlier attempt's; this one writes its own if it fails
    resume = (out / "last.pt").is_file()
    if not resume:  # a dead attempt that never reached an epoch: start clean, no mixed logs
        for stale in out.iterdir():
            if stale.name not in (ATTEMPTS_FILE, LOG_FILE, TRIAL_LOCK):  # the log is this attempt's output
                shutil.rmtree(stale) if stale.is_dir() else stale.unlink()
    started = time.time()
    attempt = {
        "pid": os.getpid(),
        "host": socket.gethostname(),
        "resume": resume,
        "started": datetime.now(UTC).isoformat(timespec="seconds"),
    }
    with open(out / ATTEMPTS_FILE, "a") as f:
        f.write(dumps_json(attempt, indent=None) + "\n")
    number = len((out / ATTEMPTS_FILE).read_text().splitlines())
    logger.info(
        "=== trial %s, attempt %d: pid %d on %s, %s ===",
        out.name,
        number,
        attempt["pid"],
        attempt["host"],
        "resuming from last.pt" if resume else "from the start",
    )
    record = run(cfg.replace(out_dir=out), out, resume)

    env = DialogueEnv(simulator=cfg.simulator, data_dir=cfg.data_dir, user_noise=cfg.user_noise)
    seeds = range(first_seed, first_seed + dialogues)
    result = run_dialogues(load_agent(out / "best.pt")[0], env, seeds)
    metrics = dict(result.summary)
    for key in ("success", "paper_success"):  # over the dialogues of this one seed, not over seeds
        metrics[f"{key}_ci95"] = ci95([d[key] for d in result.dialogues])
    if (
        out / "last.pt"
    ).is_file():  # the policy the run ended with, on the same dialogues (no collapse hidden)
        last = run_dialogues(load_agent(out / "last.pt")[0], env, seeds)
        metrics |= {f"{LAST_PREFIX}{key}": value for key, value in last.summary.items()}
    metrics |= {
        "best_epoch": record.get("best", {}).get("epoch"),
        "best_validation_success": record.get("best", {}).get("success"),
        "training_split": record.get("training_split"),
        "wall_s": time.time() - started,
    }
    write_json(out / EVALUATION_FILE, {"summary": metrics, "dialogues": result.dialogues}, indent=None)

    data = mw_data.load(cfg.data_dir or None)
    versions = {
        "code": code_version(),
        "data_dir": str(data.root),
        "data_checksums": mw_data.verify(data.root),
        "python": platform.python_version(),
        "torch": torch.__version__,
        "engine": engine,
        "host": socket.gethostname(),
    }
    if engine == "ray":
        import ray

        versions["ray"] = ray.__version__
    return {"metrics": metrics, "versions": versions}
