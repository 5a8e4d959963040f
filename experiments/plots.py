"""Figures a paper could use, from a sweep's cells: every algorithm on the same axes, means over seeds with their
95% Student-t intervals (bands for curves, bars for points), axis labels in words and a caption line saying what
the bands are.

- ``plot_learning_curves``: one figure per metric (success, inform F1, match, turns), a panel per simulator and
  noise level, a line per algorithm (mean over seeds) with its band;
- ``plot_success_vs_noise``: a panel per simulator, a point per algorithm and noise level, the points of the
  algorithms set slightly apart so that their intervals do not hide each other;
- ``plot_success_vs_ic``: a panel per algorithm and simulator that varies I_c, a line per noise level;
- ``plot_kl_against_ic``: the bottleneck's KL during training, a panel per I_c with the bound drawn in it, a
  line per variant (Lagrange multiplier, a fixed phi, none): whether the constraint binds;
- ``plot_transfer``: a panel per training user, a pair of bars per policy (its score on each user): what a
  policy keeps on the user it never met.
"""

from __future__ import annotations

import logging
import math
import re
from collections import defaultdict
from collections.abc import Iterable, Mapping, Sequence
from pathlib import Path
from typing import Any

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402

from vrb.stats import mean_ci  # noqa: E402

METRIC_LABELS = {
    "paper_success": "task success (papers' definition)",
    "success": "task success (ConvLab-2's definition)",
    "paper_inform_f1": "inform F1 (papers' definition)",
    "inform_f1": "inform F1 (ConvLab-2's definition)",
    "paper_match": "match rate (papers' definition)",
    "book_rate": "book rate (ConvLab-2's definition)",
    "paper_turns": "turns per dialogue (user turns)",
    "turns": "turns per dialogue (both sides)",
}
CURVE_METRICS = ("paper_success", "paper_inform_f1", "paper_match", "paper_turns")
BAND_CAPTION = (
    "Lines and points: mean over seeds; bands and bars: 95% Student-t interval over the seeds (n per cell)."
)
Series = tuple[Sequence[float], Sequence[float], Sequence[float]]  # x, mean, 95% interval half-width


def learning_curve(trial_dir: Path, tag: str) -> dict[int, float]:
    """Validation scalar per epoch from a trial's TensorBoard event files (all of them, resumed runs too)."""
    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

    logging.getLogger("tensorboard").setLevel(logging.ERROR)  # a resumed trial's purge is expected
    if not trial_dir.is_dir():
        return {}
    accumulator = EventAccumulator(str(trial_dir), size_guidance={"scalars": 0})
    accumulator.Reload()
    if tag not in accumulator.Tags().get("scalars", []):
        return {}
    return {event.step: event.value for event in accumulator.Scalars(tag)}


def _figure(
    path: Path,
    title: str,
    xlabel: str,
    ylabel: str,
    panels: Mapping[str, Mapping[str, Series]],
    *,
    band: bool,
    offset: float = 0.0,
    hlines: Mapping[str, float] | None = None,
    symlog: float | None = None,
) -> bool:
    """Panels side by side on shared y axes, a dashed level in a panel ``hlines`` names; ``symlog``: a y axis
    linear below that value and logarithmic above (curves of very different sizes). False when there is nothing
    to draw."""
    panels = {name: lines for name, lines in panels.items() if lines}
    if not panels:
        return False
    columns = min(3, len(panels))
    rows = math.ceil(len(panels) / columns)
    fig, axes = plt.subplots(rows, columns, figsize=(5.4 * columns, 4.0 * rows), squeeze=False, sharey=True)
    labels = sorted({label for lines in panels.values() for label in lines})
    colours = {label: f"C{i % 10}" for i, label in enumerate(labels)}
    for ax, (name, lines) in zip(axes.flat, panels.items(), strict=False):
        for k, (label, (xs, ys, errors)) in enumerate(sorted(lines.items())):
            errors = [0.0 if math.isnan(e) else e for e in errors]
            if band:
                ax.plot(xs, ys, color=colours[label], label=label)
                ax.fill_between(
                    xs,
                    [y - e for y, e in zip(ys, errors, strict=True)],
                    [y + e for y, e in zip(ys, errors, strict=True)],
                    color=colours[label],
                    alpha=0.18,
                    linewidth=0,
                )
            else:
                shift = (k - (len(lines) - 1) / 2) * offset
                ax.errorbar([x + shift for x in xs], ys, yerr=errors, color=colours[label], marker="o", markersize=4,
                            capsize=3, linestyle="-", linewidth=0.8, label=label)  # fmt: skip
        if hlines and name in hlines:
            ax.axhline(hlines[name], color="black", linestyle="--", linewidth=1)
        ax.set(title=name, xlabel=xlabel)
        if symlog is not None:
            ax.set_yscale("symlog", linthresh=symlog)
        ax.grid(alpha=0.3)
    for ax in axes[:, 0]:
        ax.set_ylabel(ylabel)
    for ax in axes.flat[len(panels) :]:
        ax.set_visible(False)
    handles, names = axes.flat[0].get_legend_handles_labels()
    fig.legend(
        handles,
        names,
        loc="upper center",
        ncol=max(1, min(6, len(names), 160 // max(map(len, names), default=1))),  # long labels: fewer columns
        fontsize="small",
        bbox_to_anchor=(0.5, 1 - 0.01 / rows),
    )
    fig.suptitle(title, y=1 + 0.04 / rows)
    fig.text(0.01, 0.005 / rows, BAND_CAPTION, fontsize=8)
    # the legend's and the title's room, the same in inches however many rows
    fig.tight_layout(rect=(0, 0.03 / rows, 1, 1 - 0.07 / rows))
    fig.savefig(path, dpi=130, bbox_inches="tight")
    plt.close(fig)
    return True


def _series(points: Iterable[tuple[float, float, float]]) -> Series:
    xs, ys, errors = zip(*sorted(points), strict=True)
    return xs, ys, errors


def plot_success_vs_noise(cells: Sequence[Any], metric: str, path: Path) -> bool:
    points: dict[str, dict[str, list]] = defaultdict(lambda: defaultdict(list))
    for cell in cells:
        mean, ci, _ = cell.stats(metric)
        points[f"{cell.key['simulator']} user"][cell.label].append((cell.key["user_noise"], mean, ci))
    panels = {
        sim: {label: _series(p) for label, p in lines.items() if len(p) > 1} for sim, lines in points.items()
    }
    xlabel = "probability p of corrupting each user act"
    return _figure(path, f"{METRIC_LABELS[metric]} under a noisy user", xlabel, METRIC_LABELS[metric], panels,
                   band=False, offset=0.006)  # fmt: skip


def plot_success_vs_ic(cells: Sequence[Any], metric: str, path: Path) -> bool:
    points: dict[str, dict[str, list]] = defaultdict(lambda: defaultdict(list))
    for cell in cells:
        if cell.key["ic"] is not None:
            mean, ci, _ = cell.stats(metric)
            panel = f"{cell.key['algo']} on the {cell.key['simulator']} user"
            points[panel][f"user noise p = {cell.key['user_noise']}"].append((cell.key["ic"], mean, ci))
    panels = {
        name: {label: _series(p) for label, p in lines.items() if len(p) > 1}
        for name, lines in points.items()
    }
    xlabel = "information bound I_c of the bottleneck (nats)"
    return _figure(path, f"{METRIC_LABELS[metric]} against the information bound", xlabel, METRIC_LABELS[metric],
                   panels, band=False, offset=0.01)  # fmt: skip


def mean_curve(cell: Any, sweep_dir: Path, tag: str) -> Series | None:
    """A scalar of the cell's trials per epoch: mean over seeds and 95% interval, at the epochs all share."""
    curves = [learning_curve(sweep_dir / "trials" / t.trial_id, tag) for t in cell.trials]
    curves = [c for c in curves if c]
    if not curves:
        return None
    steps = sorted(set.intersection(*(set(c) for c in curves)))
    stats = [mean_ci([c[s] for c in curves]) for s in steps]
    return steps, [m for m, _ in stats], [ci for _, ci in stats]


def plot_learning_curves(cells: Sequence[Any], sweep_dir: Path, out: Path) -> list[str]:
    """One figure per headline metric; the names of the files written."""
    written = []
    for metric in CURVE_METRICS:
        panels: dict[str, dict[str, Series]] = defaultdict(dict)
        for cell in cells:
            curve = mean_curve(cell, sweep_dir, f"eval/{metric}")
            if curve is not None:
                panels[f"{cell.key['simulator']} user, noise p = {cell.key['user_noise']}"][cell.label] = (
                    curve
                )
        name = f"learning_{metric.removeprefix('paper_')}.png"
        title = f"validation {METRIC_LABELS[metric]} during training"
        if _figure(out / name, title, "training epoch", METRIC_LABELS[metric], panels, band=True):
            written.append(name)
    return written


def plot_kl_against_ic(cells: Sequence[Any], sweep_dir: Path, path: Path) -> bool:
    """KL of the bottleneck per epoch (``diagnostics/kl``, mean over seeds with its band) against I_c."""
    panels: dict[str, dict[str, Series]] = defaultdict(dict)
    bounds: dict[str, float] = {}
    noises = {cell.key["user_noise"] for cell in cells if cell.key["ic"] is not None}
    for cell in cells:
        if cell.key["ic"] is None:
            continue
        curve = mean_curve(cell, sweep_dir, "diagnostics/kl")
        if curve is None:
            continue
        panel = f"I_c = {cell.key['ic']}, {cell.key['simulator']} user"
        label = re.sub(r"I_c [0-9.]+(, )?", "", cell.label).replace(", )", ")").replace(" ()", "")
        if len(noises) > 1:  # one line per noise level in each bound's panel
            label += f", user noise p = {cell.key['user_noise']}"
        panels[panel][label] = curve
        bounds[panel] = float(cell.key["ic"])
    title = "KL of the bottleneck during training against its bound I_c (dashed)"
    peak = max((max(ys) for lines in panels.values() for _, ys, _ in lines.values()), default=0.0)
    spread = peak > 20 * max(bounds.values(), default=1.0)  # an unbounded KL beside bounded ones: a log axis
    return _figure(path, title, "training epoch", "KL (nats, mean per transition)", panels, band=True,
                   hlines=bounds, symlog=0.1 if spread else None)  # fmt: skip


Scores = Mapping[
    str, Mapping[str, Mapping[str, tuple[float, float, int]]]
]  # panel -> policy -> user -> stats


def plot_transfer(scores: Scores, metric: str, path: Path, unit: str = "") -> bool:
    """Horizontal bars, one panel per training user (``scores``: panel -> policy -> evaluation user -> (mean,
    95% half-width, n)), a bar per evaluation user; the policies of all panels top to bottom in the order given,
    on shared axes (a policy a panel lacks leaves its row empty); ``unit`` names the values' scale ("%")."""
    panels = {name: policies for name, policies in scores.items() if policies}
    if not panels:
        return False
    policies = list(dict.fromkeys(policy for rows in panels.values() for policy in rows))
    users = list(dict.fromkeys(user for rows in panels.values() for row in rows.values() for user in row))
    height = 0.8 / len(users)
    fig, axes = plt.subplots(1, len(panels), figsize=(4.2 + 4.0 * len(panels), 1.4 + 0.5 * len(policies)),
                             squeeze=False, sharex=True, sharey=True)  # fmt: skip
    for ax, (name, rows) in zip(axes.flat, panels.items(), strict=True):
        for k, user in enumerate(users):
            drawn = [(policies.index(p), row[user]) for p, row in rows.items() if user in row]
            ys = [i + (k - (len(users) - 1) / 2) * height for i, _ in drawn]
            errors = [0.0 if math.isnan(ci) else ci for _, (_, ci, _) in drawn]
            ax.barh(ys, [mean for _, (mean, _, _) in drawn], height=height, xerr=errors, capsize=2,
                    color=f"C{k}", label=f"on the {user} user")  # fmt: skip
        ax.set(title=name, xlabel=METRIC_LABELS[metric] + (f", {unit}" if unit else ""))
        ax.grid(axis="x", alpha=0.3)
    axes[0, 0].set_yticks(range(len(policies)), policies, fontsize="small")
    axes[0, 0].invert_yaxis()
    handles, names = axes.flat[0].get_legend_handles_labels()
    fig.legend(
        handles, names, loc="upper center", ncol=len(names), fontsize="small", bbox_to_anchor=(0.5, 0.95)
    )
    fig.suptitle(f"{METRIC_LABELS[metric]} on the user each policy trained on and on the other")
    fig.text(0.01, 0.0, "Bars: mean over seeds; whiskers: 95% Student-t interval over the seeds.", fontsize=8)
    fig.tight_layout(rect=(0, 0.03, 1, 0.9))
    fig.savefig(path, dpi=130, bbox_inches="tight")
    plt.close(fig)
    return True
