"""Train and evaluate a grid of runs in parallel processes; tabulate mean ± 95% Student-t CI over seeds.

A lightweight companion to the sweep runner (``experiments.sweep``) for one machine:

    python -m experiments.grid --algos mle ppo gdpl vrb --seeds 0 1 2 --jobs 12 --dialogues 1000 --out runs/grid

Each (algo, variant, seed) runs ``python -m vrb.train`` into ``OUT/NAME`` and then ``python -m vrb.evaluate`` on
each of its ``--checkpoints`` (best.pt and last.pt by default; mle.pt is the cloned start) over ``--dialogues``
dialogues (seeds 0..N-1); ``OUT/summary.json`` and ``OUT/summary.md`` hold the table, mean ± 95% Student-t
interval over seeds. ``--variant NAME:FIELD=VALUE,FIELD=VALUE`` adds configurations beside the defaults.

Unlike the sweep's ``--engine processes`` (a YAML grid of configs; each trial one train-and-evaluate call in a
child process, retried from ``last.pt``, recorded in a results store), a job here is the command-line pipeline
``vrb.train`` then ``vrb.evaluate`` per checkpoint, with any extra ``vrb.train`` arguments passed through as
given; it is never retried, and a re-run resumes it from the files it left (``last.pt``, ``results.json``,
``eval-CHECKPOINT.json``) instead of a store.
"""

from __future__ import annotations

import argparse
import json
import logging
import subprocess
import sys
import time
from collections.abc import Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from envs.cli import ArgumentParser
from envs.fileio import atomic_write_text, write_json
from vrb.stats import mean_ci

logger = logging.getLogger("experiments.grid")
COLUMNS = (
    ("turns", "paper_turns"),
    ("match", "paper_match"),
    ("inform F1", "paper_inform_f1"),
    ("success", "paper_success"),
    ("success (ConvLab-2)", "success"),
    ("acts/turn", "acts_per_turn"),
)
CHECKPOINTS = ("best", "last", "mle")
CAPTION = "Mean ± 95% Student-t interval over seeds; papers' definitions."


@dataclass(frozen=True)
class Job:
    algo: str
    variant: str
    overrides: tuple[str, ...]
    seed: int

    @property
    def name(self) -> str:
        return f"{self.algo}{'-' + self.variant if self.variant else ''}-s{self.seed}"


def run_job(
    job: Job, out: Path, dialogues: int, simulator: str, extra: Sequence[str], checkpoints: Sequence[str]
) -> dict[str, dict]:
    """Train the job (resuming a cut run) and evaluate each checkpoint once; {checkpoint: evaluation}."""
    folder = out / job.name
    results = {name: folder / f"eval-{name}.json" for name in checkpoints}
    if all(path.is_file() for path in results.values()):
        return {name: json.loads(path.read_text()) for name, path in results.items()}
    started = time.perf_counter()
    train = [
        sys.executable,
        "-m",
        "vrb.train",
        "--algo",
        job.algo,
        "--simulator",
        simulator,
        "--seed",
        str(job.seed),
        "--out",
        str(folder),
        *extra,
    ]
    train += [arg for item in job.overrides for arg in ("--set", item)]
    if (folder / "last.pt").is_file():
        train.append("--resume")
    with open(out / f"{job.name}.log", "a") as log:
        if not (folder / "results.json").is_file():
            subprocess.run(train, check=True, stdout=log, stderr=subprocess.STDOUT)
        trained = time.perf_counter() - started
        for name, path in results.items():
            if not path.is_file():
                subprocess.run(
                    [
                        sys.executable,
                        "-m",
                        "vrb.evaluate",
                        "--checkpoint",
                        str(folder / f"{name}.pt"),
                        "--simulator",
                        simulator,
                        "--dialogues",
                        str(dialogues),
                        "--transcripts",
                        "0",
                        "--out",
                        str(path),
                    ],
                    check=True,
                    stdout=log,
                    stderr=subprocess.STDOUT,
                )
    evaluations = {name: json.loads(path.read_text()) for name, path in results.items()}
    for name, evaluation in evaluations.items():
        evaluation.pop("dialogues", None)  # the per-dialogue rows stay in the run folder's file only
        evaluation["train_seconds"] = trained
        logger.info(
            "%s %s: success %.3f (papers), inform F1 %.3f, trained in %.0f s",
            job.name,
            name,
            evaluation["summary"]["paper_success"],
            evaluation["summary"]["paper_inform_f1"],
            trained,
        )
    return evaluations


def tabulate(results: dict[Job, dict[str, dict]]) -> tuple[list[dict], str]:
    rows, lines = (
        [],
        [
            "| run | checkpoint | n | " + " | ".join(label for label, _ in COLUMNS) + " | train s |",
            "|---" * (len(COLUMNS) + 4) + "|",
        ],
    )
    checkpoints = list(dict.fromkeys(name for per_job in results.values() for name in per_job))
    for algo, variant in dict.fromkeys((job.algo, job.variant) for job in results):
        for checkpoint in checkpoints:
            cell = [
                r[checkpoint]
                for job, r in results.items()
                if (job.algo, job.variant) == (algo, variant) and checkpoint in r
            ]
            if not cell:
                continue
            row = {"algo": algo, "variant": variant, "checkpoint": checkpoint, "n": len(cell)}
            texts = []
            for _label, key in COLUMNS:
                mean, ci = mean_ci([r["summary"].get(key) for r in cell])
                row[key] = {"mean": mean, "ci95": ci}
                texts.append(f"{mean:.3f} ± {ci:.3f}")
            seconds = float(np.mean([r.get("train_seconds", float("nan")) for r in cell]))
            rows.append(row | {"train_seconds": seconds})
            lines.append(
                f"| {algo}{' ' + variant if variant else ''} | {checkpoint} | {len(cell)} | "
                + " | ".join(texts)
                + f" | {seconds:.0f} |"
            )
    return rows, "\n".join(lines)


def parse_variant(text: str) -> tuple[str, tuple[str, ...]]:
    name, sep, assignments = text.partition(":")
    if not sep or not name or not assignments:
        raise argparse.ArgumentTypeError(f"variant {text!r}: expected NAME:FIELD=VALUE[,FIELD=VALUE...]")
    return name, tuple(assignments.split(","))


def main(argv: Sequence[str] | None = None) -> int:
    parser = ArgumentParser(prog="python -m experiments.grid", description=__doc__.splitlines()[0])
    parser.add_argument("--algos", nargs="+", default=["mle", "ppo", "gdpl", "vrb"])
    parser.add_argument("--seeds", nargs="+", type=int, default=[0, 1, 2])
    parser.add_argument(
        "--variant",
        action="append",
        type=parse_variant,
        default=[],
        help="NAME:FIELD=VALUE,... (applies to every algo in --algos)",
    )
    parser.add_argument("--no-defaults", action="store_true", help="run only the --variant configurations")
    parser.add_argument("--simulator", default="agenda")
    parser.add_argument("--dialogues", type=int, default=1000)
    parser.add_argument("--jobs", type=int, default=2)
    parser.add_argument(
        "--checkpoints",
        nargs="+",
        choices=CHECKPOINTS,
        default=["best", "last"],
        help="which checkpoints of each run to evaluate",
    )
    parser.add_argument("--out", default="runs/grid")
    parser.add_argument("train_args", nargs="*", help="extra vrb.train arguments, after --")
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(message)s")
    configs = ([] if args.no_defaults else [("", ())]) + list(args.variant)
    jobs = [
        Job(algo, name, overrides, seed)
        for algo in args.algos
        for name, overrides in configs
        for seed in args.seeds
    ]
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    with ThreadPoolExecutor(max_workers=args.jobs) as pool:
        futures = {
            job: pool.submit(
                run_job, job, out, args.dialogues, args.simulator, args.train_args, args.checkpoints
            )
            for job in jobs
        }
    results, failed = {}, []
    for job, future in futures.items():
        try:
            results[job] = future.result()
        except subprocess.CalledProcessError as exc:
            failed.append(job.name)
            logger.error("%s failed (%s); see %s", job.name, exc, out / f"{job.name}.log")
    rows, table = tabulate(results)
    write_json(
        out / "summary.json",
        {
            "rows": rows,
            "failed": failed,
            "runs": {
                job.name: {name: r["summary"] for name, r in per_job.items()}
                for job, per_job in results.items()
            },
        },
    )
    atomic_write_text(out / "summary.md", f"{CAPTION}\n\n{table}\n")
    print(f"{CAPTION}\n\n{table}")
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
