"""Trials side by side, the way a sweep runs them: seconds per 200-epoch trial at the defaults against the old
update settings (minibatch 32, learning rates 1e-4 / 5e-5, no cloned-start cache), all in one wave.

    python benchmarks/bench_trials.py                 # 16 trials: VRB and PPO, 5 new + 3 old each (a 16-core machine)
    python benchmarks/bench_trials.py --new 1 --old 1 --epochs 20   # a quick look on a small machine

Each trial is one ``experiments.grid`` job (``vrb.train`` single-threaded, ``workers=1``, then ``vrb.evaluate`` of
best.pt and last.pt on 1000 test dialogues); the cloned starts of the new trials' seeds are computed first, as a
sweep's trials find them after the first trial of a seed. Saves ``benchmarks/results/bench_trials.json``: each
trial's training seconds (from the grid's log) and the mean per learner and setting.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import re
import subprocess
import sys
import tempfile
from pathlib import Path

RESULTS = Path(__file__).resolve().parent / "results"
OLD = "old:minibatch_size=32,policy_lr=1e-4,value_lr=5e-5,clone_cache=false"
SINGLE = ["--set", "torch_threads=1", "--set", "workers=1"]
TRAINED = re.compile(r"(\S+)-s(\d+) best: .* trained in (\d+) s")


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--new", type=int, default=5, help="trials of each learner at the defaults")
    parser.add_argument("--old", type=int, default=3, help="trials of each learner at the old settings")
    parser.add_argument("--epochs", type=int, default=200)
    parser.add_argument("--algos", nargs="+", default=["vrb", "ppo"])
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as folder:
        work = Path(folder)
        warm = [
            subprocess.Popen(
                [
                    sys.executable,
                    "-m",
                    "vrb.train",
                    "--algo",
                    "mle",
                    "--seed",
                    str(s),
                    *SINGLE,
                    "--out",
                    str(work / f"warm{s}"),
                ],
                stdout=subprocess.DEVNULL,
                stderr=subprocess.STDOUT,
            )
            for s in range(args.new)
        ]
        for process in warm:
            process.wait()
        waves = []
        for algo in args.algos:
            for name, count, extra in (
                ("new", args.new, []),
                ("old", args.old, ["--no-defaults", "--variant", OLD]),
            ):
                grid = [
                    sys.executable,
                    "-m",
                    "experiments.grid",
                    "--jobs",
                    str(count),
                    "--algos",
                    algo,
                    "--seeds",
                    *map(str, range(count)),
                    "--dialogues",
                    "1000",
                    "--checkpoints",
                    "best",
                    "last",
                    "--out",
                    str(work / f"{algo}-{name}"),
                    *extra,
                    "--",
                    "--epochs",
                    str(args.epochs),
                    *SINGLE,
                ]
                log = open(work / f"{algo}-{name}.log", "w")  # noqa: SIM115 (held while the grid runs)
                waves.append((algo, name, subprocess.Popen(grid, stdout=log, stderr=subprocess.STDOUT), log))
        trials = []
        for algo, name, process, log in waves:
            process.wait()
            log.close()
            for line in (work / f"{algo}-{name}.log").read_text().splitlines():
                found = TRAINED.search(line)
                if found:
                    trials.append(
                        {"algo": algo, "setting": name, "seed": int(found[2]), "seconds": int(found[3])}
                    )
    means = {}
    for trial in trials:
        means.setdefault(f"{trial['algo']} {trial['setting']}", []).append(trial["seconds"])
    result = {
        "what": "seconds per trial (vrb.train, single-threaded, workers=1), all trials side by side",
        "python": platform.python_version(),
        "machine": platform.platform(),
        "cpu_count": os.cpu_count(),
        "epochs": args.epochs,
        "old_settings": OLD,
        "trials": trials,
        "mean_seconds": {key: sum(v) / len(v) for key, v in means.items()},
    }
    RESULTS.mkdir(exist_ok=True)
    (RESULTS / "bench_trials.json").write_text(json.dumps(result, indent=1) + "\n")
    print(json.dumps(result["mean_seconds"], indent=1))
    return 0


if __name__ == "__main__":
    sys.exit(main())
