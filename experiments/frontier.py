"""Tables and the success–inform-F1 frontier from ``experiments.grid`` results.

    python -m experiments.frontier runs/f1/ppo runs/f1/vrb --out experiments/results/learning

Reads each grid folder's ``summary.json`` (mean ± 95% Student-t interval over seeds per run and checkpoint)
and writes ``table.md`` (turns, match, inform F1, success under the papers' definitions, and acts per turn)
and ``frontier.png``: papers' success against inform F1, one marker per learner and setting, filled for
best.pt and hollow for last.pt, bars the 95% intervals. A policy that buys success by saying everything at
once sits low on the F1 axis; the top-right corner is the goal.
"""

from __future__ import annotations

import argparse
import json
import sys
from collections.abc import Sequence
from pathlib import Path

import matplotlib

from envs.cli import ArgumentParser
from envs.fileio import atomic_write_text

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402

TABLE_COLUMNS = (
    ("turns", "paper_turns", 2),
    ("match", "paper_match", 3),
    ("inform F1", "paper_inform_f1", 3),
    ("success", "paper_success", 3),
    ("acts/turn", "acts_per_turn", 2),
)
CHECKPOINT_LABELS = {"best": "best.pt", "last": "last.pt", "mle": "mle.pt"}
CAPTION = "Papers' definitions; mean ± 95% Student-t interval over seeds."
NAN = float("nan")


def load_rows(folders: Sequence[Path]) -> list[dict]:
    rows = []
    for folder in folders:
        path = folder / "summary.json"
        if not path.is_file():
            raise FileNotFoundError(f"{path} does not exist: expected the output folder of experiments.grid")
        rows.extend(json.loads(path.read_text())["rows"])
    for row in rows:  # JSON has no NaN: the grid writes an undefined mean or interval (one seed) as null
        for key, cell in row.items():
            if isinstance(cell, dict):
                row[key] = {name: NAN if value is None else value for name, value in cell.items()}
    return rows


ALGO_NAMES = {
    "vrb": "VRB",
    "gdpl": "GDPL",
    "ppo": "PPO",
    "mle": "MLE",
    "acer": "ACER",
    "aldm": "ALDM",
    "gp_mbcm": "GP-MBCM",
}
VARIANT_NAMES = {"": "(defaults)", "pure": "pure learned reward"}


def label(row: dict) -> str:
    if row["checkpoint"] == "mle":
        return "MLE (the cloned start)"
    name = ALGO_NAMES.get(row["algo"], row["algo"])
    return f"{name} {VARIANT_NAMES.get(row['variant'], row['variant'])}"


def table(rows: Sequence[dict]) -> str:
    header = "| learner | checkpoint | n | " + " | ".join(name for name, _, _ in TABLE_COLUMNS) + " |"
    lines = [header, "|---" * (len(TABLE_COLUMNS) + 3) + "|"]
    for row in rows:
        cells = []
        for _, key, digits in TABLE_COLUMNS:
            cell = row.get(key, {"mean": NAN, "ci95": NAN})
            cells.append(f"{cell['mean']:.{digits}f} ± {cell['ci95']:.{digits}f}")
        lines.append(
            f"| {label(row)} | {CHECKPOINT_LABELS[row['checkpoint']]} | {row['n']} | "
            + " | ".join(cells)
            + " |"
        )
    return "\n".join(lines)


def parse_reference(text: str) -> tuple[str, float, float]:
    name, sep, values = text.rpartition("=")
    try:
        f1, success = (float(v) for v in values.split(","))
    except ValueError:
        raise argparse.ArgumentTypeError(f"--reference {text!r}: expected LABEL=F1,SUCCESS") from None
    if not sep or not name:
        raise argparse.ArgumentTypeError(f"--reference {text!r}: expected LABEL=F1,SUCCESS")
    return name, f1, success


def plot(rows: Sequence[dict], path: Path, references: Sequence[tuple[str, float, float]] = ()) -> None:
    fig, ax = plt.subplots(figsize=(7.5, 5.5))
    for name, f1, success in references:
        ax.plot(f1, success, marker="*", markersize=11, color="black", linestyle="none")
        ax.annotate(name, (f1, success), textcoords="offset points", xytext=(6, -3), fontsize=7)
    colours: dict[str, str] = {}
    palette = plt.rcParams["axes.prop_cycle"].by_key()["color"]
    for row in rows:
        name = label(row)
        colour = colours.setdefault(name, palette[len(colours) % len(palette)])
        f1, success = row["paper_inform_f1"], row["paper_success"]
        hollow = row["checkpoint"] == "last"
        ax.errorbar(
            f1["mean"],
            success["mean"],
            xerr=f1["ci95"],
            yerr=success["ci95"],
            fmt="o",
            color=colour,
            markerfacecolor="white" if hollow else colour,
            capsize=3,
            label=f"{name} ({CHECKPOINT_LABELS[row['checkpoint']]})",
        )
    ax.set_xlabel("inform F1 (papers' definition, pooled over 1000 test dialogues)")
    ax.set_ylabel("task success (papers' definition)")
    ax.set_title("Success against inform F1: each learner and setting")
    ax.grid(alpha=0.3)
    ax.legend(fontsize=7, loc="lower right")
    fig.text(
        0.01,
        0.005,
        "Markers: mean over seeds; bars: 95% Student-t intervals; hollow markers: last.pt.",
        fontsize=7,
    )
    fig.tight_layout(rect=(0, 0.02, 1, 1))
    fig.savefig(path, dpi=130)
    plt.close(fig)


def main(argv: Sequence[str] | None = None) -> int:
    parser = ArgumentParser(prog="python -m experiments.frontier", description=__doc__.splitlines()[0])
    parser.add_argument("grids", nargs="+", type=Path, help="output folders of experiments.grid")
    parser.add_argument("--out", type=Path, required=True, help="folder for table.md and frontier.png")
    parser.add_argument(
        "--reference",
        action="append",
        type=parse_reference,
        default=[],
        help="a fixed point to draw, LABEL=F1,SUCCESS (e.g. the rule policy)",
    )
    args = parser.parse_args(argv)
    try:
        rows = load_rows(args.grids)
    except (FileNotFoundError, json.JSONDecodeError, KeyError) as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    args.out.mkdir(parents=True, exist_ok=True)
    text = f"{CAPTION}\n\n{table(rows)}"
    atomic_write_text(args.out / "table.md", text + "\n")
    plot(rows, args.out / "frontier.png", args.reference)
    print(text)
    return 0


if __name__ == "__main__":
    sys.exit(main())
