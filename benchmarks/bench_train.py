"""Wall-clock of a whole default training run (MLE warm start + 200 epochs × 1024 steps), printed and saved.

    python benchmarks/bench_train.py                     # the default VRB run (target: <= 6 minutes on 2 cores)
    python benchmarks/bench_train.py --algo gdpl --epochs 20

The run goes into a temporary folder; its TensorBoard ``perf/`` scalars give the per-epoch rates.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import sys
import tempfile
import time
from pathlib import Path

import torch
from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

from vrb.algorithms import make_config
from vrb.checkpoint import code_version
from vrb.config import TrainConfig
from vrb.train import run

RESULTS = Path(__file__).resolve().parent / "results"
HEADLINE = ("epoch", "paper_success", "paper_inform_f1", "paper_match", "paper_turns")


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--algo", default="vrb")
    parser.add_argument("--epochs", type=int, default=TrainConfig.epochs)
    parser.add_argument("--out", default=str(RESULTS / "bench_train.json"))
    args = parser.parse_args()
    cfg = make_config(algo=args.algo, epochs=args.epochs)
    with tempfile.TemporaryDirectory() as folder:
        started = time.perf_counter()
        record = run(cfg, Path(folder) / "run")
        seconds = time.perf_counter() - started
        events = EventAccumulator(str(Path(folder) / "run"))
        events.Reload()
        rates = [e.value for e in events.Scalars("perf/steps_per_s")] if cfg.algo != "mle" else []
    result = {
        "what": f"python -m vrb.train --algo {cfg.algo} --epochs {cfg.epochs} (defaults otherwise), wall clock",
        "seconds": round(seconds, 1),
        "minutes": round(seconds / 60, 2),
        "epochs": cfg.epochs,
        "steps_per_epoch": cfg.steps_per_epoch,
        "mean_epoch_steps_per_s": round(sum(rates) / len(rates), 1) if rates else None,
        "best_validation": {k: record["best"].get(k) for k in HEADLINE},
        "final_validation": {k: record["final"].get(k) for k in HEADLINE},
        "machine": {
            "cpus": os.cpu_count(),
            "platform": platform.platform(),
            "python": sys.version.split()[0],
            "torch": torch.__version__,
            "load_average": os.getloadavg(),
        },
        "code_version": code_version(),
    }
    print(json.dumps(result, indent=1))
    out = Path(args.out)
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps(result, indent=1) + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
