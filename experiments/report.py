"""Tables and plots of a finished (or running) sweep: ``python -m experiments.report SWEEP_DIR``.

Writes into ``SWEEP_DIR/report`` (or ``--out``):

- ``report.md``: the paper-style table (turns, match, inform F1, success on agenda and VHUS, noise-free
  trials), every cell as mean ± 95% Student-t interval over seeds with n, and the failed trials;
- ``cells.csv`` (one row per cell: every metric's mean, CI half-width and n), ``trials.csv`` (one per trial);
- ``success_vs_noise.png``, ``success_vs_ic.png`` and ``learning_{success,inform_f1,match,turns}.png``
  (validation per epoch, read from the trials' TensorBoard event files): ``experiments.plots``.

A cell is every finished trial that differs only in its seed. Numbers use the GDPL/VRB papers' metric
definitions by default (``--definition convlab`` switches to ConvLab-2's); the CSV files carry both.
"""

from __future__ import annotations

import csv
import io
import logging
import math
import sys
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from envs.cli import ArgumentParser
from envs.fileio import atomic_write_bytes, atomic_write_text
from experiments.frontier import ALGO_NAMES
from experiments.plots import (
    BAND_CAPTION,
    plot_kl_against_ic,
    plot_learning_curves,
    plot_success_vs_ic,
    plot_success_vs_noise,
)
from experiments.store import ResultStore, TrialRecord
from vrb.algorithms import registered
from vrb.config import SIMULATORS
from vrb.stats import difference_ci, mean_ci

logger = logging.getLogger("experiments.report")

CI_CAPTION = "Mean ± 95% Student-t interval over seeds (n − 1 degrees of freedom; n seeds)"

CELL_FIELDS = ("algo", "simulator", "user_noise", "ic")  # what tells cells apart, besides other grid axes
IC_ALGOS = ("vrb",)  # algorithms whose results depend on I_c
METRICS = (
    "turns",
    "book_rate",
    "inform_precision",
    "inform_recall",
    "inform_f1",
    "success",
    "paper_turns",
    "paper_match",
    "paper_inform_precision",
    "paper_inform_recall",
    "paper_inform_f1",
    "paper_success",
)
DEFINITIONS = {  # paper-table column -> metric key, per definition
    "papers": {
        "turns": "paper_turns",
        "match": "paper_match",
        "inform": "paper_inform_f1",
        "success": "paper_success",
    },
    "convlab": {"turns": "turns", "match": "book_rate", "inform": "inform_f1", "success": "success"},
}


AXIS_NAMES = {"ic": "I_c", "alpha_phi": "α_φ", "phi0": "φ₀"}  # how a grid axis is named in a row label
AXIS_WORDS = {  # grid values that read better as words
    "alpha_phi": {0.0: "φ fixed", 0.001: "Lagrange update"},
    "env_reward": {
        "none": "learned reward only",
        "user": "learned + user reward",
        "evaluator": "learned + evaluator reward",
    },
}
# Rows whose words differ for a learner without a learned reward: its env_reward is its only reward.
ALGO_AXIS_WORDS = {
    ("ppo", "env_reward"): {"user": "user reward", "evaluator": "evaluator reward: the paper's PPO"},
}
CHECKPOINT_PREFIXES = {"best": "", "last": "last_"}  # metric-key prefix of each evaluated checkpoint


@dataclass
class Cell:
    key: dict[str, Any]
    trials: list[TrialRecord]

    @property
    def label(self) -> str:
        """The algorithm and, in words, the grid values that set its cell apart (a trial's axes only)."""
        parts = [str(self.key["algo"])]
        for name, value in self.key.items():
            if name in ("algo", "simulator", "user_noise") or value is None:
                continue
            words = ALGO_AXIS_WORDS.get((self.key["algo"], name)) or AXIS_WORDS.get(name, {})
            parts.append(words.get(value, f"{AXIS_NAMES.get(name, name)} {value}"))
        return parts[0] + (f" ({', '.join(parts[1:])})" if parts[1:] else "")

    def values(self, metric: str) -> list[float]:
        return [float(t.metrics[metric]) for t in self.trials if t.metrics.get(metric) is not None]

    def stats(self, metric: str) -> tuple[float, float, int]:
        """Mean, half-width of the 95% Student-t interval over seeds, and the number of seeds."""
        values = self.values(metric)
        mean, ci = mean_ci(values)
        return mean, ci, len(values)


ALGO_ORDER = ("vrb", "gdpl", "ppo", "mle", "acer", "aldm", "gp_mbcm")  # the tables' rows, the papers' order


def _cell_key(record: TrialRecord, extra_axes: Sequence[str]) -> dict[str, Any]:
    config = record.config
    key = {name: config.get(name) for name in CELL_FIELDS}
    key["user_noise"] = float(key["user_noise"] or 0.0)
    if key["algo"] not in IC_ALGOS:
        key["ic"] = None
    key |= {name: record.axes.get(name) for name in extra_axes}  # None: not an axis of this trial's block
    return key


def build_cells(records: Iterable[TrialRecord]) -> list[Cell]:
    """Group finished trials into cells, ordered by algorithm, simulator, noise and I_c."""
    records = list(records)
    extra = sorted({name for r in records for name in r.axes} - set(CELL_FIELDS) - {"seed"})
    cells: dict[tuple, Cell] = {}
    algo_order = [*ALGO_ORDER, *sorted(set(registered()) - set(ALGO_ORDER))]
    for record in records:
        key = _cell_key(record, extra)
        cells.setdefault(tuple(map(repr, key.values())), Cell(key, [])).trials.append(record)

    def order(cell: Cell) -> tuple:
        algo, simulator = cell.key["algo"], cell.key["simulator"]
        return (
            algo_order.index(algo) if algo in algo_order else len(algo_order),
            algo,
            SIMULATORS.index(simulator) if simulator in SIMULATORS else len(SIMULATORS),
            cell.key["user_noise"],
            -1 if cell.key["ic"] is None else cell.key["ic"],
            tuple(repr(cell.key[name]) for name in extra),
        )

    return sorted(cells.values(), key=order)


def papers_label(cell: Cell) -> str:
    """The cell's label with its learner named as the papers write it (VRB, GDPL, the paper's PPO, ...)."""
    algo = cell.key["algo"]
    return ALGO_NAMES.get(algo, algo) + cell.label[len(algo) :]


def display_scale(metric: str) -> tuple[float, int]:
    """How the tables show a papers' metric: (scale, decimals); turns in rounds, the rest in %."""
    return (1.0, 2) if metric.endswith("turns") else (100.0, 1)


def format_mean_ci(mean: float, ci: float, scale: float = 1.0, digits: int = 3) -> str:
    if math.isnan(mean):
        return "n/a"
    shown = f"{mean * scale:.{digits}f}"
    if float(shown) == 0.0:  # no "-0.0": a difference that rounds to nothing has no sign
        shown = f"{0.0:.{digits}f}"
    return shown if math.isnan(ci) else f"{shown} ± {ci * scale:.{digits}f}"


# -- tables -------------------------------------------------------------------------------------------------


def paper_table(cells: Sequence[Cell], definition: str = "papers", checkpoint: str = "best") -> str:
    """Markdown: one row per algorithm (and I_c), turns / match / inform / success per simulator, noise 0;
    of each trial's ``best.pt`` or ``last.pt`` (``checkpoint``)."""
    prefix = CHECKPOINT_PREFIXES[checkpoint]
    columns = {name: prefix + metric for name, metric in DEFINITIONS[definition].items()}
    clean = [cell for cell in cells if cell.key["user_noise"] == 0.0]
    simulators = [s for s in SIMULATORS if any(c.key["simulator"] == s for c in clean)]
    rows: dict[str, dict[str, Cell]] = {}
    for cell in clean:
        rows.setdefault(cell.label, {})[cell.key["simulator"]] = cell
    header = ["policy"] + [f"{sim} {name}" for sim in simulators for name in columns] + ["n"]
    lines = ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
    for label, by_simulator in rows.items():
        entries = []
        for simulator in simulators:
            cell = by_simulator.get(simulator)
            for name, metric in columns.items():
                if cell is None:
                    entries.append("—")
                    continue
                mean, ci, _ = cell.stats(metric)
                scale, digits = (1.0, 2) if name == "turns" else (100.0, 1)
                entries.append(format_mean_ci(mean, ci, scale, digits))
        counts = "/".join(str(len(by_simulator[s].trials)) if s in by_simulator else "0" for s in simulators)
        lines.append("| " + " | ".join([label, *entries, counts]) + " |")
    return "\n".join(lines)


def noise_drop_table(cells: Sequence[Cell], metric: str, low: float = 0.0, high: float = 0.3) -> str:
    """Each learner's drop in ``metric`` from user noise ``low`` to ``high``: mean(low) - mean(high) over seeds
    with its 95% Welch interval (the two noise levels are separate runs), in percentage points."""
    by_label: dict[tuple[str, str], dict[float, Cell]] = {}
    for cell in cells:
        by_label.setdefault((cell.key["simulator"], cell.label), {})[cell.key["user_noise"]] = cell
    lines = [
        f"| user | learner | {metric} at p = {low} | at p = {high} | drop (points, 95% Welch interval) |",
        "|---|---|---|---|---|",
    ]
    for (simulator, label), levels in sorted(by_label.items()):
        if low not in levels or high not in levels:
            continue
        clean, noisy = levels[low].values(metric), levels[high].values(metric)
        drop, ci = difference_ci(clean, noisy)
        lines.append(
            f"| {simulator} | {label} | {format_mean_ci(*mean_ci(clean), scale=100, digits=1)} | "
            f"{format_mean_ci(*mean_ci(noisy), scale=100, digits=1)} | {format_mean_ci(drop, ci, 100, 1)} |"
        )
    return "\n".join(lines) if len(lines) > 2 else ""


def cell_rows(cells: Sequence[Cell]) -> list[dict[str, Any]]:
    rows = []
    for cell in cells:
        row: dict[str, Any] = {name: ("" if value is None else value) for name, value in cell.key.items()}
        row["n"] = len(cell.trials)
        for metric in METRICS:
            mean, ci, n = cell.stats(metric)
            row |= {f"{metric}_mean": mean, f"{metric}_ci95": ci, f"{metric}_n": n}
        rows.append(row)
    return rows


def cells_markdown(cells: Sequence[Cell], metric: str) -> str:
    if not cells:
        return "(no finished trials)"
    key_names = list(cells[0].key)
    header = [*key_names, "n", f"{metric} (mean ± 95% Student-t CI)"]
    lines = ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
    for cell in cells:
        mean, ci, n = cell.stats(metric)
        keys = ["—" if cell.key[name] is None else str(cell.key[name]) for name in key_names]
        lines.append("| " + " | ".join([*keys, str(n), format_mean_ci(mean, ci)]) + " |")
    return "\n".join(lines)


def _code_label(code: Mapping[str, str]) -> str:
    """``git describe``, plus the sources' digest where recorded (git metadata can be stale on copied trees)."""
    label = code.get("git") or "?"
    return f"{label} (source {code['source']})" if code.get("source") else label


def trial_rows(records: Iterable[TrialRecord]) -> list[dict[str, Any]]:
    rows = []
    for record in records:
        row = {
            "trial_id": record.trial_id,
            "status": record.status,
            "attempts": record.attempts,
            "recorded_at": record.recorded_at,
            **{f"axis_{k}": v for k, v in record.axes.items()},
            "git": record.versions.get("code", {}).get("git", ""),
            "source": record.versions.get("code", {}).get("source", ""),
        }
        row |= {metric: record.metrics.get(metric) for metric in METRICS}
        rows.append(row)
    return rows


def write_csv(path: Path, rows: Sequence[Mapping[str, Any]]) -> None:
    names = list(dict.fromkeys(name for row in rows for name in row))
    text = io.StringIO(newline="")  # the csv module's own line ends, untranslated
    writer = csv.DictWriter(text, fieldnames=names)
    writer.writeheader()
    writer.writerows(rows)
    atomic_write_bytes(path, text.getvalue().encode())


# -- the report ---------------------------------------------------------------------------------------------


def write_report(sweep_dir: Path, out: Path | None = None, definition: str = "papers") -> Path:
    sweep_dir = Path(sweep_dir)
    out = Path(out) if out else sweep_dir / "report"
    out.mkdir(parents=True, exist_ok=True)
    store = ResultStore.open_existing(sweep_dir)
    finished = store.finished()
    failed = {r.trial_id: r for r in store.records("failed") if r.trial_id not in finished}
    cells = build_cells(finished.values())
    metric = DEFINITIONS[definition]["success"]

    write_csv(out / "cells.csv", cell_rows(cells))
    write_csv(out / "trials.csv", trial_rows([*finished.values(), *failed.values()]))
    plots = {
        "success_vs_noise.png": plot_success_vs_noise(cells, metric, out / "success_vs_noise.png"),
        "success_vs_ic.png": plot_success_vs_ic(cells, metric, out / "success_vs_ic.png"),
        "kl_vs_ic.png": plot_kl_against_ic(cells, sweep_dir, out / "kl_vs_ic.png"),
    } | dict.fromkeys(plot_learning_curves(cells, sweep_dir, out), True)
    versions = sorted({_code_label(r.versions.get("code", {})) for r in finished.values()})
    lines = [
        f"# Sweep report: {sweep_dir.name}",
        "",
        f"{len(finished)} finished trials in {len(cells)} cells; {len(failed)} failed. "
        f"Metric definitions: {definition} ({metric}). Values are mean ± 95% Student-t interval over seeds; "
        "n is the number of seeds. Code versions: " + ", ".join(versions or ["none"]) + ".",
        "",
        "## Paper table, best.pt (no user noise; match, inform F1 and success in %)",
        "",
        f"{CI_CAPTION}.",
        "",
        paper_table(cells, definition),
        "",
        "## Paper table, last.pt (the policy each run ended with; same dialogues)",
        "",
        f"{CI_CAPTION}.",
        "",
        paper_table(cells, definition, "last"),
        "",
        *(
            [f"## Drop under a noisy user: {metric}", "", drop_table, ""]
            if (drop_table := noise_drop_table(cells, metric))
            else []
        ),
        f"## Every cell: {metric}",
        "",
        f"{CI_CAPTION}.",
        "",
        cells_markdown(cells, metric),
        "",
    ]
    lines += [f"{BAND_CAPTION}", ""] if any(plots.values()) else []
    lines += [f"![{name}]({name})\n" for name, made in plots.items() if made]
    if failed:
        lines += ["## Failed trials", ""]
        for record in failed.values():
            last_line = (record.error.strip().splitlines() or ["?"])[-1]
            lines.append(f"- `{record.trial_id}` after {record.attempts} attempt(s): {last_line}")
        lines.append("")
    commands = sweep_dir / "commands.log"
    if commands.is_file():
        lines += ["## Commands", "", "```", commands.read_text().rstrip(), "```", ""]
    atomic_write_text(out / "report.md", "\n".join(lines))
    return out / "report.md"


def main(argv: Sequence[str] | None = None) -> int:
    parser = ArgumentParser(prog="python -m experiments.report", description=__doc__.splitlines()[0])
    parser.add_argument("sweep_dir", help="a folder written by experiments.sweep")
    parser.add_argument("--out", help="report folder (default SWEEP_DIR/report)")
    parser.add_argument(
        "--definition",
        choices=sorted(DEFINITIONS),
        default="papers",
        help="metric definitions of the tables and plots (default: the GDPL/VRB papers')",
    )
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(levelname)s %(name)s: %(message)s")
    for noisy in ("tensorboard", "matplotlib"):  # their INFO lines are about file discovery, not results
        logging.getLogger(noisy).setLevel(logging.WARNING)
    try:
        path = write_report(Path(args.sweep_dir), Path(args.out) if args.out else None, args.definition)
    except FileNotFoundError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    print(f"wrote {path}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
