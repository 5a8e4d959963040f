"""The robustness, ablation and cross-simulator tables of docs/experiments.md, from the committed results.

``experiments.readme`` calls these (its ``robustness``, ``ablation`` and ``cross`` markers); each reads one folder
under ``experiments/results/`` and says in its caption what the numbers are. Success, inform F1 and match in %,
turns in rounds; mean ± 95% Student-t interval over seeds; a drop or a difference with its 95% Welch interval.
"""

from __future__ import annotations

import json
import textwrap
from collections.abc import Sequence
from pathlib import Path

from experiments import cross, frontier, report
from experiments.store import ResultStore
from vrb.stats import difference_ci, mean_ci

NOISE_LEVELS = (0.0, 0.1, 0.2, 0.3)
CHECKPOINT_PREFIX = {"best": "", "last": "last_"}


def _wrap(text: str) -> str:
    return textwrap.fill(text, 114, break_long_words=False, break_on_hyphens=False)


def _cells(folder: Path) -> list[report.Cell]:
    if not (folder / "results.sqlite").is_file():
        return []
    return report.build_cells(ResultStore.open_existing(folder).finished().values())


def _learner_order(cell: report.Cell) -> tuple:
    """The papers' order of learners, each one's defaults before its variants."""
    algo = cell.key["algo"]
    rank = report.ALGO_ORDER.index(algo) if algo in report.ALGO_ORDER else len(report.ALGO_ORDER)
    label = report.papers_label(cell)
    return rank, label != frontier.ALGO_NAMES.get(algo, algo), label


def _pct(values: Sequence[float]) -> str:
    return report.format_mean_ci(*mean_ci(values), scale=100, digits=1) if values else "—"


def robustness_table(folder: Path) -> str:
    """Success of each learner at each user-noise level and its drop from the clean to the noisiest user."""
    cells = _cells(folder)
    if not cells:
        return "(no trials yet)"
    learners: dict[str, dict[float, report.Cell]] = {}
    for cell in sorted(cells, key=_learner_order):
        learners.setdefault(report.papers_label(cell), {})[cell.key["user_noise"]] = cell
    low, high = NOISE_LEVELS[0], NOISE_LEVELS[-1]
    lines = [
        "| learner | checkpoint | "
        + " | ".join(f"p = {p}" for p in NOISE_LEVELS)
        + f" | drop p = {low} → {high} | n |",
        "|---|---|" + "---:|" * (len(NOISE_LEVELS) + 2),
    ]
    for learner, levels in learners.items():
        for checkpoint, prefix in CHECKPOINT_PREFIX.items():
            metric = f"{prefix}paper_success"
            values = {p: levels[p].values(metric) if p in levels else [] for p in NOISE_LEVELS}
            drop = "—"
            if values[low] and values[high]:
                drop = report.format_mean_ci(*difference_ci(values[low], values[high]), scale=100, digits=1)
            counts = sorted({len(v) for v in values.values() if v})  # of the levels run
            n = "–".join(str(c) for c in sorted({counts[0], counts[-1]})) if counts else "0"
            lines.append(
                f"| {learner} | {checkpoint} | "
                + " | ".join(_pct(values[p]) for p in NOISE_LEVELS)
                + f" | {drop} | {n} |"
            )
    lines += _reference_rows(folder / "reference")
    caption = (
        "Success (papers' definition, %) on the agenda user whose acts reach the tracker corrupted with "
        "probability p, in training and in the test dialogues (1000 per trial); mean ± 95% Student-t interval "
        "over seeds; the drop in points with its 95% Welch interval (separate runs). VRB's default I_c is 0.5. "
        "The rule policy, which learns nothing, is one run on the same dialogues [95% bootstrap interval over "
        "them]. Every metric of every cell: "
        "[experiments/results/robustness/](../experiments/results/robustness/README.md)."
    )
    return "\n".join(lines) + "\n\n" + _wrap(caption)


def _reference_rows(folder: Path) -> list[str]:
    """The rule policy at each noise level (``rule-noiseP.json`` of ``vrb.evaluate --policy rule --user-noise P
    --out``): what the noise leaves to a policy that learns nothing."""
    scored = {p: folder / f"rule-noise{p}.json" for p in NOISE_LEVELS}
    if not all(path.is_file() for path in scored.values()):
        return []
    cells, values = [], {}
    for p, path in scored.items():
        run = json.loads(path.read_text())
        values[p] = run["summary"]["paper_success"]
        low, high = run["intervals"]["paper_success"]
        cells.append(f"{100 * values[p]:.1f} [{100 * low:.1f}, {100 * high:.1f}]")
    drop = 100 * (values[NOISE_LEVELS[0]] - values[NOISE_LEVELS[-1]])
    return ["| Rule policy | — | " + " | ".join(cells) + f" | {drop:.1f} | 1 run |"]


ABLATION_VARIANTS = (  # (words, alpha_phi, phi0, I_c of the cell)
    ("no bottleneck (φ = 0)", 0.0, 0.0, 0.5),
    ("fixed φ = 0.1", 0.0, 0.1, 0.5),
    ("fixed φ = 1.0", 0.0, 1.0, 0.5),
    ("Lagrange update, I_c 0.1", 0.001, 0.0, 0.1),
    ("Lagrange update, I_c 0.5 (the defaults)", 0.001, 0.0, 0.5),
)
ABLATION_REWARDS = {"none": "learned reward only", "user": "learned + user reward (defaults)"}
ABLATION_COLUMNS = {  # column -> metric key
    "success": "paper_success",
    "last.pt success": "last_paper_success",
    "inform F1": "paper_inform_f1",
    "match": "paper_match",
    "turns": "paper_turns",
}


def ablation_table(folder: Path) -> str:
    """VRB's bottleneck removed, fixed or held by the Lagrange update, in both reward settings."""
    cells = _cells(folder)
    if not cells:
        return "(no trials yet)"
    lines = [
        "| reward | bottleneck | " + " | ".join(ABLATION_COLUMNS) + " | n |",
        "|---|---|" + "---:|" * (len(ABLATION_COLUMNS) + 1),
    ]
    for reward, reward_words in ABLATION_REWARDS.items():
        for words, alpha_phi, phi0, ic in ABLATION_VARIANTS:
            wanted = {"env_reward": reward, "alpha_phi": alpha_phi, "phi0": phi0, "ic": ic}
            found = [c for c in cells if all(c.key.get(k) == v for k, v in wanted.items())]
            if not found:
                continue
            cell = found[0]
            entries = []
            for metric in ABLATION_COLUMNS.values():
                scale, digits = (1.0, 2) if metric.endswith("turns") else (100.0, 1)
                entries.append(
                    report.format_mean_ci(*mean_ci(cell.values(metric)), scale=scale, digits=digits)
                )
            lines.append(f"| {reward_words} | {words} | " + " | ".join(entries) + f" | {len(cell.trials)} |")
    caption = (
        "VRB on the agenda user, 200 epochs; `best.pt` unless named, 1000 test dialogues per trial; mean ± 95% "
        "Student-t interval over seeds. With φ fixed, I_c only shifts the estimator's loss by the constant "
        "φ·I_c, so those cells ran once (at I_c 0.5) and stand for every I_c. Plots and every cell: "
        "[experiments/results/ablation/](../experiments/results/ablation/README.md)."
    )
    return "\n".join(lines) + "\n\n" + _wrap(caption)


def cross_table(folder: Path) -> str:
    """The cross-simulator evaluation's table from its ``cross.json``."""
    path = folder / "cross.json"
    if not path.is_file():
        return "(no evaluation yet)"
    runs = json.loads(path.read_text())
    simulators = list(runs[0]["on"]) if runs else []
    caption = (
        f"{cross.CAPTION} Each policy's own user is its training one; the other column group is the user it "
        "never met. How they were trained: "
        "[experiments/results/cross/](../experiments/results/cross/README.md)."
    )
    return cross.table(runs, simulators) + "\n" + _wrap(caption)
