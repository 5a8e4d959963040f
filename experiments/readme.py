"""Regenerate every result table of the README from the committed results: ``python -m experiments.readme``.

The README marks each generated table with ``<!-- generated: NAME -->`` ... ``<!-- end: NAME -->``; this command
rewrites what stands between them from the source below, so no number in those tables is typed by hand.
``--check`` only compares (exit 1 when the README is stale; the test suite runs it).

| NAME | source |
|---|---|
| ``learning`` | ``experiments/results/learning/grids/*/summary.json`` (``experiments.grid``) |
| ``paper-table`` | ``experiments/results/paper_table/results.sqlite`` (``experiments.sweep``) |
| ``robustness`` | ``experiments/results/robustness/results.sqlite`` |
| ``cross`` | ``experiments/results/cross/cross.json`` (``experiments.cross``) |
| ``benchmarks`` | ``benchmarks/results/*.json`` |

Every interval over seeds is the 95% Student-t interval (``vrb.stats.mean_ci``); the caption line above each
table says so.
"""

from __future__ import annotations

import json
import re
import sys
from collections.abc import Callable, Sequence
from pathlib import Path

from envs.cli import ArgumentParser
from envs.fileio import atomic_write_text
from experiments import cross, frontier, report
from experiments.store import ResultStore

ROOT = Path(__file__).resolve().parents[1]
RESULTS = ROOT / "experiments" / "results"
CAPTION = "Mean ± 95% Student-t interval over seeds (n seeds per cell); papers' definitions."


LEARNER_ORDER = ("mle", "ppo", "vrb", "gdpl")


def learning_table() -> str:
    """MLE, then PPO, VRB and GDPL; the defaults before the pure learned reward, best.pt before last.pt."""
    rows = frontier.load_rows(sorted((RESULTS / "learning" / "grids").iterdir()))
    order = ("mle", "best", "last")

    def key(row: dict) -> tuple:
        algo = "mle" if row["checkpoint"] == "mle" else row["algo"]
        return LEARNER_ORDER.index(algo), row["variant"] != "", row["variant"], order.index(row["checkpoint"])

    return frontier.table(sorted(rows, key=key))


def paper_table() -> str:
    store = ResultStore.open_existing(RESULTS / "paper_table")
    cells = report.build_cells(store.finished().values())
    return "Match, inform F1 and success in %; n = seeds on agenda/VHUS.\n\n" + report.paper_table(
        cells, "papers"
    )


def robustness_table() -> str:
    """Papers' success: a row per noise level, a column per algorithm (and I_c)."""
    store = ResultStore.open_existing(RESULTS / "robustness")
    cells = report.build_cells(store.finished().values())
    labels = list(dict.fromkeys(cell.label for cell in cells))
    noises = sorted({cell.key["user_noise"] for cell in cells})
    by_key = {(cell.label, cell.key["user_noise"]): cell for cell in cells}
    lines = ["| p | " + " | ".join(labels) + " |", "|---" * (len(labels) + 1) + "|"]
    for noise in noises:
        entries = []
        for label in labels:
            cell = by_key.get((label, noise))
            entries.append("—" if cell is None else report.format_mean_ci(*cell.stats("paper_success")[:2]))
        lines.append(f"| {noise} | " + " | ".join(entries) + " |")
    return "\n".join(lines)


def cross_table() -> str:
    runs = json.loads((RESULTS / "cross" / "cross.json").read_text())
    return cross.table(runs, ("agenda", "vhus")).rstrip()


def benchmarks_table() -> str:
    path = ROOT / "benchmarks" / "results" / "bench_train.json"
    bench = json.loads(path.read_text())
    best, final = bench["best_validation"], bench["final_validation"]
    return (
        "| run | wall clock | best validation success / inform F1 | final |\n|---|---|---|---|\n"
        f"| {bench['what']} | {bench['minutes']:.2f} min | {best['paper_success']:.3f} / "
        f"{best['paper_inform_f1']:.3f} (epoch {best['epoch'] + 1}) | {final['paper_success']:.3f} / "
        f"{final['paper_inform_f1']:.3f} |"
    )


SECTIONS: dict[str, Callable[[], str]] = {
    "learning": learning_table,
    "paper-table": paper_table,
    "robustness": robustness_table,
    "cross": cross_table,
    "benchmarks": benchmarks_table,
}


def regenerate(text: str) -> str:
    """``text`` with every marked table rebuilt; a marker whose source is unknown is refused."""

    def rebuild(match: re.Match) -> str:
        name = match.group(1)
        if name not in SECTIONS:
            raise KeyError(f"README marker names unknown table {name!r}; expected one of {sorted(SECTIONS)}")
        caption = "" if name == "benchmarks" else f"{CAPTION}\n\n"
        return f"{match.group(0).split(chr(10))[0]}\n{caption}{SECTIONS[name]()}\n<!-- end: {name} -->"

    return re.sub(r"<!-- generated: ([\w-]+) -->\n.*?<!-- end: \1 -->", rebuild, text, flags=re.S)


def main(argv: Sequence[str] | None = None) -> int:
    parser = ArgumentParser(prog="python -m experiments.readme", description=__doc__.splitlines()[0])
    parser.add_argument("--readme", type=Path, default=ROOT / "README.md", help="the README to rewrite")
    parser.add_argument("--check", action="store_true", help="only compare: exit 1 when the README is stale")
    args = parser.parse_args(argv)
    try:
        text = args.readme.read_text()
        fresh = regenerate(text)
    except (OSError, KeyError, FileNotFoundError) as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    if args.check:
        stale = fresh != text
        print(f"{args.readme}: {'stale: run python -m experiments.readme' if stale else 'up to date'}")
        return 1 if stale else 0
    atomic_write_text(args.readme, fresh)
    print(f"wrote {args.readme}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
