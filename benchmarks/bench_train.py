"""Wall-clock of a whole default training run (MLE warm start + 200 epochs × 1024 steps), printed and saved.

    python benchmarks/bench_train.py                     # the default VRB run (target: <= 3 minutes on 2 cores)
    python benchmarks/bench_train.py --algo gdpl --epochs 20
    python benchmarks/bench_train.py --compare-one-worker   # also the same run sampling in one process

The run goes into a temporary folder; its TensorBoard ``perf/`` scalars give the per-epoch rates. With
``--compare-one-worker`` the same seed runs again with ``workers=1`` and the JSON says whether both wrote the same
``results.json`` (they must: the samples do not depend on the worker count).
"""

from __future__ import annotations

import argparse
import json
import sys
import tempfile
import time
from pathlib import Path

from machine import machine_info
from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

from vrb.algorithms import make_config
from vrb.checkpoint import code_version
from vrb.config import TrainConfig
from vrb.train import run
from vrb.workers import worker_count

RESULTS = Path(__file__).resolve().parent / "results"
PARALLEL_ALGOS = ("ppo", "gdpl", "vrb", "aldm")  # the PPO family: their sampler may use worker processes
HEADLINE = ("epoch", "paper_success", "paper_inform_f1", "paper_match", "paper_turns")


def timed_run(cfg) -> tuple[float, dict, list[float], list[float]]:
    """(seconds, record, per-epoch steps/s, per-epoch sampling steps/s) of one run in a temporary folder."""
    with tempfile.TemporaryDirectory() as folder:
        started = time.perf_counter()
        record = run(cfg, Path(folder) / "run")
        seconds = time.perf_counter() - started
        events = EventAccumulator(str(Path(folder) / "run"))
        events.Reload()
        online = cfg.algo != "mle"
        rates = [e.value for e in events.Scalars("perf/steps_per_s")] if online else []
        sampling = [e.value for e in events.Scalars("perf/sampling_steps_per_s")] if online else []
    return seconds, record, rates, sampling


def mean(values: list[float]) -> float | None:
    return round(sum(values) / len(values), 1) if values else None


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--algo", default="vrb")
    parser.add_argument("--epochs", type=int, default=TrainConfig.epochs)
    parser.add_argument("--workers", type=int, default=TrainConfig.workers, help="0: the default count")
    parser.add_argument("--compare-one-worker", action="store_true", help="also run with workers=1")
    parser.add_argument("--out", default=str(RESULTS / "bench_train.json"))
    args = parser.parse_args()
    cfg = make_config(algo=args.algo, epochs=args.epochs, workers=args.workers)
    seconds, record, rates, sampling = timed_run(cfg)
    result = {
        "what": f"python -m vrb.train --algo {cfg.algo} --epochs {cfg.epochs} (defaults otherwise), wall clock",
        "seconds": round(seconds, 1),
        "minutes": round(seconds / 60, 2),
        "epochs": cfg.epochs,
        "steps_per_epoch": cfg.steps_per_epoch,
        "workers": worker_count(cfg) if cfg.algo in PARALLEL_ALGOS else 1,
        "mean_epoch_steps_per_s": mean(rates),
        "mean_sampling_steps_per_s": mean(sampling),
        "best_validation": {k: record["best"].get(k) for k in HEADLINE},
        "final_validation": {k: record["final"].get(k) for k in HEADLINE},
        "machine": machine_info(),
        "code_version": code_version(),
    }
    if args.compare_one_worker:
        one_seconds, one_record, one_rates, one_sampling = timed_run(cfg.replace(workers=1))
        result["one_worker"] = {
            "seconds": round(one_seconds, 1),
            "minutes": round(one_seconds / 60, 2),
            "mean_epoch_steps_per_s": mean(one_rates),
            "mean_sampling_steps_per_s": mean(one_sampling),
            "same_results": json.dumps(one_record, sort_keys=True, default=float)
            == json.dumps(record, sort_keys=True, default=float),
        }
    print(json.dumps(result, indent=1))
    out = Path(args.out)
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps(result, indent=1) + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
