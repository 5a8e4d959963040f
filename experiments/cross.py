"""Cross-evaluation: every trained policy on every user simulator, ``python -m experiments.cross RUN_DIR...``.

    python -m experiments.cross runs/paper_table/trials/* --jobs 2 --out runs/cross/cross

A policy trained against one user meets another: each run folder's ``best.pt`` and ``last.pt`` (those it has:
an MLE run ends with its best) are played, as the run decoded, on the same seeded dialogues under each
``--simulators`` user. ``OUT.json`` keeps, per run and checkpoint, the run's settings and a summary per
simulator; ``OUT.md`` the table: one row per policy (named as the paper table names it), training user and
checkpoint, one column group per evaluation user, mean ± 95% Student-t interval over seeds (the GDPL/VRB
papers' metrics, in %; turns in rounds); ``OUT.png`` each ``best.pt``'s success on every user, a panel per
training user.
"""

from __future__ import annotations

import logging
import sys
from collections import defaultdict
from collections.abc import Mapping, Sequence
from concurrent.futures import ProcessPoolExecutor
from multiprocessing import get_context
from pathlib import Path
from typing import Any

import torch

from envs.cli import ArgumentParser
from envs.dialogue_env import DialogueEnv
from envs.fileio import atomic_write_text, write_json
from envs.multiwoz.data import DataError
from experiments.frontier import ALGO_NAMES
from experiments.plots import plot_transfer
from experiments.report import ALGO_ORDER, Cell, display_scale, format_mean_ci, papers_label
from vrb.acting import run_dialogues
from vrb.checkpoint import CheckpointError
from vrb.config import SIMULATORS
from vrb.evaluate import load_agent
from vrb.stats import mean_ci

logger = logging.getLogger("experiments.cross")

COLUMNS = {  # column -> papers' metric key (turns in rounds, the rest in %)
    "success": "paper_success",
    "inform F1": "paper_inform_f1",
    "match": "paper_match",
    "turns": "paper_turns",
}
CHECKPOINTS = ("best", "last")
DEFAULT_ENV_REWARD = "user"  # a run on the user's reward is a learner's defaults: its row is named plainly
CAPTION = (
    "Papers' definitions, in % (turns in rounds); mean ± 95% Student-t interval over seeds (n per row); "
    "each policy decoding as its run did, on the same test dialogues of each user."
)


def policy_name(config: Mapping[str, Any]) -> str:
    """The paper table's name of a run's policy: the learner, and its reward when not the defaults."""
    reward = config.get("env_reward")
    key = {"algo": config["algo"], "env_reward": None if reward == DEFAULT_ENV_REWARD else reward}
    return papers_label(Cell(key, []))


def evaluate_run(
    run_dir: Path,
    simulators: Sequence[str],
    seeds: Sequence[int],
    checkpoints: Sequence[str],
    data_dir: str | None,
) -> list[dict[str, Any]]:
    """One entry per checkpoint of ``run_dir``: the run's settings and a summary per evaluation simulator."""
    torch.set_num_threads(1)  # one job, one core: --jobs sets the parallelism
    envs = {name: DialogueEnv(simulator=name, data_dir=data_dir) for name in simulators}
    entries = []
    for checkpoint in checkpoints:
        if not (run_dir / f"{checkpoint}.pt").is_file():  # MLE's runs end with their best: no last.pt
            continue
        agent, config = load_agent(run_dir / f"{checkpoint}.pt")
        entry = {
            "run": run_dir.name,
            "checkpoint": checkpoint,
            "policy": policy_name(config),
            "algo": config["algo"],
            "env_reward": config.get("env_reward"),
            "trained_on": config["simulator"],
            "seed": config["seed"],
            "on": {name: run_dialogues(agent, env, seeds).summary for name, env in envs.items()},
        }
        logger.info(
            "%s %s (trained on %s): papers' success %s",
            run_dir.name,
            checkpoint,
            config["simulator"],
            ", ".join(f"{name} {entry['on'][name]['paper_success']:.3f}" for name in simulators),
        )
        entries.append(entry)
    return entries


def cross_evaluate(
    run_dirs: Sequence[Path],
    simulators: Sequence[str],
    dialogues: int,
    first_seed: int = 0,
    data_dir: str | None = None,
    checkpoints: Sequence[str] = CHECKPOINTS,
    jobs: int = 1,
) -> list[dict[str, Any]]:
    """Every run's entries, in the order of ``run_dirs``; ``jobs`` runs evaluated side by side."""
    seeds = range(first_seed, first_seed + dialogues)
    tasks = [(run_dir, simulators, seeds, checkpoints, data_dir) for run_dir in run_dirs]
    if jobs <= 1:
        results = [evaluate_run(*task) for task in tasks]
    else:  # spawn: workers start clean of this process's torch state
        with ProcessPoolExecutor(jobs, mp_context=get_context("spawn")) as pool:
            results = list(pool.map(evaluate_run, *zip(*tasks, strict=True)))
    return [entry for entries in results for entry in entries]


Group = tuple[str, str, str]  # policy, training user, checkpoint


def _groups(runs: Sequence[Mapping[str, Any]]) -> dict[Group, list[Mapping[str, Any]]]:
    """The entries of each (policy, training user, checkpoint), learners in the papers' order (a learner's
    defaults before its variants), then training user, then checkpoint."""
    groups: dict[Group, list[Mapping[str, Any]]] = defaultdict(list)
    for run in runs:
        groups[run["policy"], run["trained_on"], run.get("checkpoint", "best")].append(run)
    algo_of = {run["policy"]: run["algo"] for run in runs}

    def order(key: Group) -> tuple:
        policy, trained_on, checkpoint = key
        algo = algo_of[policy]
        return (
            ALGO_ORDER.index(algo) if algo in ALGO_ORDER else len(ALGO_ORDER),
            policy != ALGO_NAMES.get(algo, algo),
            policy,
            SIMULATORS.index(trained_on) if trained_on in SIMULATORS else len(SIMULATORS),
            CHECKPOINTS.index(checkpoint) if checkpoint in CHECKPOINTS else len(CHECKPOINTS),
        )

    return {key: groups[key] for key in sorted(groups, key=order)}


def table(runs: Sequence[Mapping[str, Any]], simulators: Sequence[str]) -> str:
    """One row per (policy, training user, checkpoint), learners in the papers' order."""
    header = [
        "policy",
        "trained on",
        "checkpoint",
        *(f"{column} on {sim}" for sim in simulators for column in COLUMNS),
        "n",
    ]
    lines = ["| " + " | ".join(header) + " |", "|---|---|---|" + "---:|" * (len(header) - 3)]
    for key, members in _groups(runs).items():
        cells = []
        for sim in simulators:
            for metric in COLUMNS.values():
                values = [run["on"][sim][metric] for run in members]
                cells.append(format_mean_ci(*mean_ci(values), *display_scale(metric)))
        lines.append("| " + " | ".join([*key, *cells, str(len(members))]) + " |")
    return "\n".join(lines) + "\n"


def plot(runs: Sequence[Mapping[str, Any]], simulators: Sequence[str], path: Path) -> bool:
    """Success of each policy's ``best.pt`` on every user (in %), a panel per training user, the table's order."""
    scale, _ = display_scale("paper_success")
    scores: dict[str, dict[str, dict[str, tuple[float, float, int]]]] = {
        f"trained on the {sim} user": {} for sim in SIMULATORS
    }
    for (policy, trained_on, checkpoint), members in _groups(runs).items():
        if checkpoint != "best":
            continue
        stats = {}
        for sim in simulators:
            mean, ci = mean_ci([run["on"][sim]["paper_success"] for run in members])
            stats[sim] = (scale * mean, scale * ci, len(members))
        scores.setdefault(f"trained on the {trained_on} user", {})[policy] = stats
    return plot_transfer(scores, "paper_success", path, unit="%")


def main(argv: Sequence[str] | None = None) -> int:
    parser = ArgumentParser(prog="python -m experiments.cross", description=__doc__.splitlines()[0])
    parser.add_argument(
        "runs", nargs="+", help="run folders written by vrb.train (each with best.pt, last.pt)"
    )
    parser.add_argument("--simulators", nargs="+", default=list(SIMULATORS), choices=SIMULATORS)
    parser.add_argument(
        "--checkpoints", nargs="+", default=list(CHECKPOINTS), choices=CHECKPOINTS, help="which to play"
    )
    parser.add_argument("--dialogues", type=int, default=1000)
    parser.add_argument("--seed", type=int, default=0, help="first dialogue seed")
    parser.add_argument("--jobs", type=int, default=1, help="runs evaluated side by side, one core each")
    parser.add_argument("--out", default="cross", help="writes OUT.json and OUT.md")
    parser.add_argument(
        "--data-dir", help="MultiWOZ data folder (default: $VRB_DATA_DIR, ../shared/multiwoz, cache)"
    )
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    if args.dialogues < 1:
        parser.error(f"--dialogues {args.dialogues}: expected a positive number")
    if args.jobs < 1:
        parser.error(f"--jobs {args.jobs}: expected a positive number")
    run_dirs = [Path(run) for run in args.runs]
    for run in run_dirs:
        if not any((run / f"{name}.pt").is_file() for name in args.checkpoints):
            wanted = " or ".join(f"{name}.pt" for name in args.checkpoints)
            print(f"error: no {wanted} in {run}; expected a run folder written by vrb.train", file=sys.stderr)
            return 2
    try:
        runs = cross_evaluate(
            run_dirs, args.simulators, args.dialogues, args.seed, args.data_dir, args.checkpoints, args.jobs
        )
    except (CheckpointError, DataError) as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    out = Path(args.out)
    out.parent.mkdir(parents=True, exist_ok=True)
    write_json(out.with_suffix(".json"), runs)
    text = f"{CAPTION}\n\n{table(runs, args.simulators)}"
    atomic_write_text(out.with_suffix(".md"), text)
    plot(runs, args.simulators, out.with_suffix(".png"))
    print(text)
    return 0


if __name__ == "__main__":
    sys.exit(main())
