"""Cross-evaluation: every trained policy on every user simulator, ``python -m experiments.cross RUN_DIR...``.

    python -m experiments.cross runs/cross/agenda/* runs/cross/vhus/* --dialogues 1000 --out runs/cross/table

A policy trained against one user meets another: each run folder's ``best.pt`` is evaluated greedily on the
same seeded dialogues under each ``--simulators`` user. ``OUT.json`` keeps every run's summaries and
``OUT.md`` the table: one row per (algorithm, training simulator), one column group per evaluation
simulator, mean ± 95% Student-t interval over seeds (the GDPL/VRB papers' metrics).
"""

from __future__ import annotations

import logging
import sys
from collections import defaultdict
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

from envs.cli import ArgumentParser
from envs.dialogue_env import DialogueEnv
from envs.fileio import atomic_write_text, write_json
from envs.multiwoz.data import DataError
from vrb.acting import run_dialogues
from vrb.checkpoint import CheckpointError
from vrb.config import SIMULATORS
from vrb.evaluate import load_agent
from vrb.stats import mean_ci

logger = logging.getLogger("experiments.cross")

COLUMNS = (
    ("turns", "paper_turns"),
    ("match", "paper_match"),
    ("inform F1", "paper_inform_f1"),
    ("success", "paper_success"),
)
CAPTION = "Papers' definitions; mean ± 95% Student-t interval over seeds."


def cross_evaluate(
    run_dirs: Sequence[Path],
    simulators: Sequence[str],
    dialogues: int,
    first_seed: int = 0,
    data_dir: str | None = None,
) -> list[dict[str, Any]]:
    """One entry per run: its training settings and a summary per evaluation simulator."""
    envs = {name: DialogueEnv(simulator=name, data_dir=data_dir) for name in simulators}
    seeds = range(first_seed, first_seed + dialogues)
    runs = []
    for run_dir in run_dirs:
        agent, config = load_agent(run_dir / "best.pt")
        entry = {
            "run": str(run_dir),
            "algo": config["algo"],
            "trained_on": config["simulator"],
            "seed": config["seed"],
            "on": {},
        }
        for name, env in envs.items():
            entry["on"][name] = run_dialogues(agent, env, seeds).summary
            logger.info(
                "%s (trained on %s) on %s: papers' success %.3f",
                run_dir,
                config["simulator"],
                name,
                entry["on"][name]["paper_success"],
            )
        runs.append(entry)
    return runs


def table(runs: Sequence[Mapping[str, Any]], simulators: Sequence[str]) -> str:
    groups: dict[tuple[str, str], list[Mapping[str, Any]]] = defaultdict(list)
    for run in runs:
        groups[run["algo"], run["trained_on"]].append(run)
    header = [
        "policy",
        "trained on",
        *(f"{label} on {sim}" for sim in simulators for label, _ in COLUMNS),
        "n",
    ]
    lines = ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
    for (algo, trained_on), members in groups.items():
        cells = []
        for sim in simulators:
            for _, key in COLUMNS:
                mean, half = mean_ci(run["on"][sim][key] for run in members)
                cells.append(f"{mean:.3f} ± {half:.3f}")
        lines.append(f"| {algo} | {trained_on} | " + " | ".join(cells) + f" | {len(members)} |")
    return "\n".join(lines) + "\n"


def main(argv: Sequence[str] | None = None) -> int:
    parser = ArgumentParser(prog="python -m experiments.cross", description=__doc__.splitlines()[0])
    parser.add_argument("runs", nargs="+", help="run folders written by vrb.train (each with best.pt)")
    parser.add_argument("--simulators", nargs="+", default=list(SIMULATORS), choices=SIMULATORS)
    parser.add_argument("--dialogues", type=int, default=1000)
    parser.add_argument("--seed", type=int, default=0, help="first dialogue seed")
    parser.add_argument("--out", default="cross", help="writes OUT.json and OUT.md")
    parser.add_argument(
        "--data-dir", help="MultiWOZ data folder (default: $VRB_DATA_DIR, ../shared/multiwoz, cache)"
    )
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    if args.dialogues < 1:
        parser.error(f"--dialogues {args.dialogues}: expected a positive number")
    run_dirs = [Path(run) for run in args.runs]
    missing = [str(run) for run in run_dirs if not (run / "best.pt").is_file()]
    if missing:
        print(
            f"error: no best.pt in {missing[0]}; expected a run folder written by vrb.train", file=sys.stderr
        )
        return 2
    try:
        runs = cross_evaluate(run_dirs, args.simulators, args.dialogues, args.seed, args.data_dir)
    except (CheckpointError, DataError) as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    out = Path(args.out)
    out.parent.mkdir(parents=True, exist_ok=True)
    write_json(out.with_suffix(".json"), runs)
    text = f"{CAPTION}\n\n{table(runs, args.simulators)}"
    atomic_write_text(out.with_suffix(".md"), text)
    print(text)
    return 0


if __name__ == "__main__":
    sys.exit(main())
