"""Seconds per epoch of a GP-MBCM run early and late: its cost must stay flat as its data grow.

    python benchmarks/bench_gp_mbcm.py                            # 200 epochs, windows 1-10, 50-60, 190-200
    python benchmarks/bench_gp_mbcm.py --epochs 60 --windows 1-10,50-60

One run of ``vrb.train``'s defaults for ``gp_mbcm`` (single-threaded: ``torch_threads=1``, ``workers=1``) in a
temporary folder. An epoch runs from one call of the learner's ``learn_epoch`` to the next (the last: to the run's
end), so it holds everything the trial pays for that epoch: sampling with Thompson draws, adding the dialogues,
the posterior refresh, a validation when due, the checkpoints. Both its wall clock and this process's CPU time
are recorded: on a shared machine the wall clock also counts other processes' load, the CPU time does not (the
run is single-process). The JSON records each window's means, the committee's dictionary size at each window's
end (TensorBoard's ``gp/dictionary_size``), its stored numbers at the end, and the validations.
"""

from __future__ import annotations

import argparse
import functools
import json
import os
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

import numpy as np
from machine import machine_info
from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

from baselines.gp_mbcm import GPLearner
from vrb.algorithms import make_config
from vrb.checkpoint import code_version
from vrb.evaluate import load_agent
from vrb.train import run

RESULTS = Path(__file__).resolve().parent / "results"
THREAD_VARIABLES = ("OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS")  # unset: every core
HEADLINE = ("epoch", "paper_success", "paper_inform_f1", "paper_match", "paper_turns")


def windows(text: str, epochs: int) -> list[tuple[int, int]]:
    """``"1-10,50-60"`` as inclusive 1-based epoch ranges, those past ``epochs`` dropped or clipped."""
    spans = [tuple(int(x) for x in part.split("-")) for part in text.split(",")]
    return [(first, min(last, epochs)) for first, last in spans if first <= epochs]


def stored_numbers(committee) -> int:
    """Numbers the committee keeps across epochs (every GP's state_dict): what a checkpoint holds."""
    return sum(t.numel() for member in committee.gps for gp in member for t in gp.state_dict().values())


def timed_epochs(learn: Callable, stamps: list[tuple[float, float]]) -> Callable:
    """``GPLearner.learn_epoch`` that first records (wall clock, CPU time) in ``stamps``."""

    @functools.wraps(learn)
    def wrapped(self, epoch: int):
        stamps.append((time.perf_counter(), time.process_time()))
        return learn(self, epoch)

    return wrapped


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--epochs", type=int, default=200)
    parser.add_argument("--windows", default="1-10,50-60,190-200", help="inclusive epoch ranges, 1-based")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--out", default=str(RESULTS / "bench_gp_mbcm.json"))
    args = parser.parse_args()
    cfg = make_config(algo="gp_mbcm", epochs=args.epochs, seed=args.seed, torch_threads=1, workers=1)
    stamps: list[tuple[float, float]] = []
    GPLearner.learn_epoch = timed_epochs(GPLearner.learn_epoch, stamps)
    with tempfile.TemporaryDirectory() as folder:
        out = Path(folder) / "run"
        started = time.perf_counter()
        record = run(cfg, out)
        stamps.append((time.perf_counter(), time.process_time()))
        seconds = time.perf_counter() - started
        events = EventAccumulator(str(out), size_guidance={"scalars": 0})
        events.Reload()
        sizes = {e.step: e.value for e in events.Scalars("gp/dictionary_size")}
        agent, _ = load_agent(out / "last.pt")
        last_pt_mb = (out / "last.pt").stat().st_size / 1e6
    wall, cpu = np.diff(np.array(stamps), axis=0).T
    per_window = []
    for first, last in windows(args.windows, args.epochs):
        span = slice(first - 1, last)
        per_window.append(
            {
                "epochs": f"{first}-{last}",
                "seconds_per_epoch": round(float(wall[span].mean()), 3),
                "cpu_seconds_per_epoch": round(float(cpu[span].mean()), 3),
                "dictionary_size_at_end": int(sizes[last]),
            }
        )
    result = {
        "what": "python -m vrb.train --algo gp_mbcm --set torch_threads=1 --set workers=1 (defaults otherwise)",
        "seconds": round(seconds, 1),
        "minutes": round(seconds / 60, 2),
        "epochs": cfg.epochs,
        "steps_per_epoch": cfg.steps_per_epoch,
        "gp_max_dictionary": cfg.options.gp_max_dictionary,
        "windows": per_window,
        "final_dictionary_size": agent.committee.dictionary_size(),
        "final_stored_numbers": stored_numbers(agent.committee),
        "last_pt_mb": round(last_pt_mb, 2),
        "best_validation": {k: record["best"].get(k) for k in HEADLINE},
        "final_validation": {k: record["final"].get(k) for k in HEADLINE},
        "machine": machine_info(
            blas_thread_variables={name: os.environ.get(name) for name in THREAD_VARIABLES}
        ),
        "code_version": code_version(),
        "seconds_per_epoch": [round(float(x), 3) for x in wall],
        "cpu_seconds_per_epoch": [round(float(x), 3) for x in cpu],
        "dictionary_size_per_epoch": [int(sizes[step]) for step in sorted(sizes)],
    }
    print(json.dumps({k: v for k, v in result.items() if not k.endswith("_per_epoch")}, indent=1))
    out_file = Path(args.out)
    out_file.parent.mkdir(parents=True, exist_ok=True)
    out_file.write_text(json.dumps(result, indent=1) + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
