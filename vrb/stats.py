"""Confidence intervals: over seeds, the mean and the half-width of its 95% Student-t interval (``mean_ci``);
over one run's dialogues, a bootstrap percentile interval (``bootstrap_ci``, ``headline_intervals``), which also
serves pooled metrics such as the papers' inform F1.

With 3-5 seeds the normal approximation (1.96 sd / sqrt n) is 1.4-2.2x too narrow; every table over seeds uses
``mean_ci`` instead.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Iterable, Mapping, Sequence

import numpy as np

# Two-sided 95% quantiles t_{0.975}(df) for df = 1..30.
_T975 = (
    12.706, 4.303, 3.182, 2.776, 2.571, 2.447, 2.365, 2.306, 2.262, 2.228,
    2.201, 2.179, 2.160, 2.145, 2.131, 2.120, 2.110, 2.101, 2.093, 2.086,
    2.080, 2.074, 2.069, 2.064, 2.060, 2.056, 2.052, 2.048, 2.045, 2.042,
)  # fmt: skip
_Z975 = 1.959964


def t_quantile_975(df: int) -> float:
    """t_{0.975}(df): the table up to 30 degrees of freedom, Cornish-Fisher's expansion beyond (error < 1e-3)."""
    if df < 1:
        raise ValueError(f"degrees of freedom {df}: expected >= 1")
    if df <= len(_T975):
        return _T975[df - 1]
    z = _Z975
    return z + (z**3 + z) / (4 * df) + (5 * z**5 + 16 * z**3 + 3 * z) / (96 * df**2)


def mean_ci(values: Iterable[float | None]) -> tuple[float, float]:
    """(mean, half-width of the 95% Student-t interval) of the values that are not None; the half-width is NaN
    below two values."""
    kept = [float(v) for v in values if v is not None]
    if not kept:
        return float("nan"), float("nan")
    mean = sum(kept) / len(kept)
    if len(kept) < 2:
        return mean, float("nan")
    sd = math.sqrt(sum((v - mean) ** 2 for v in kept) / (len(kept) - 1))
    return mean, t_quantile_975(len(kept) - 1) * sd / math.sqrt(len(kept))


def difference_ci(first: Sequence[float], second: Sequence[float]) -> tuple[float, float]:
    """(mean(first) - mean(second), half-width of its 95% Welch interval): two groups of seeds that share
    nothing (runs under two settings), unequal variances; the degrees of freedom rounded down (wider)."""
    return contrast_ci([first, second], [1.0, -1.0])


def contrast_ci(groups: Sequence[Sequence[float]], weights: Sequence[float]) -> tuple[float, float]:
    """sum_i w_i mean(group_i) and the half-width of its 95% interval, the groups independent with unequal
    variances (Welch-Satterthwaite degrees of freedom, rounded down); e.g. a drop's difference between two
    learners: weights (1, -1, -1, 1) over (A clean, A noisy, B clean, B noisy)."""
    sizes = [len(group) for group in groups]
    if min(sizes, default=0) < 1:
        return float("nan"), float("nan")
    estimate = float(sum(w * np.mean(group) for w, group in zip(weights, groups, strict=True)))
    if min(sizes) < 2:
        return estimate, float("nan")
    parts = [w * w * np.var(g, ddof=1) / len(g) for w, g in zip(weights, groups, strict=True)]
    total = float(sum(parts))
    if total == 0:
        return estimate, 0.0
    df = total**2 / sum(part**2 / (len(g) - 1) for part, g in zip(parts, groups, strict=True))
    return estimate, t_quantile_975(max(1, math.floor(df))) * math.sqrt(total)


def bootstrap_ci(
    statistic: Callable[[np.ndarray], float], n: int, resamples: int = 1000, seed: int = 0
) -> tuple[float, float]:
    """95% percentile interval of ``statistic(indices)`` over ``resamples`` resamplings (with replacement) of
    ``n`` units: the interval of a single run's score over its dialogues, for pooled metrics too."""
    if n < 2:
        return float("nan"), float("nan")
    rng = np.random.default_rng(seed)
    values = np.array([statistic(rng.integers(0, n, n)) for _ in range(resamples)], dtype=float)
    values = values[~np.isnan(values)]  # resamples where the metric is undefined (no booking, say)
    if not len(values):
        return float("nan"), float("nan")
    return float(np.percentile(values, 2.5)), float(np.percentile(values, 97.5))


def headline_intervals(dialogues: Sequence[Mapping], resamples: int = 1000, seed: int = 0) -> dict[str, list]:
    """Bootstrap intervals over one run's dialogues of the papers' success, pooled inform F1, pooled match and
    turns (rounds); ``dialogues`` are ``vrb.evaluate``'s per-dialogue records."""
    success = np.array([d["paper_success"] for d in dialogues], dtype=float)
    rounds = np.array([d["rounds"] for d in dialogues], dtype=float)
    counts = np.array([d["inform_counts"] for d in dialogues], dtype=float)  # tp, fp, fn
    book_sum = np.array([sum(d["book_scores"]) for d in dialogues], dtype=float)
    book_n = np.array([len(d["book_scores"]) for d in dialogues], dtype=float)

    def f1(idx: np.ndarray) -> float:
        tp, fp, fn = counts[idx].sum(0)
        return 2 * tp / (2 * tp + fp + fn) if tp else 0.0

    def match(idx: np.ndarray) -> float:
        total = book_n[idx].sum()
        return book_sum[idx].sum() / total if total else float("nan")

    statistics = {
        "paper_success": lambda idx: success[idx].mean(),
        "paper_inform_f1": f1,
        "paper_match": match,
        "paper_turns": lambda idx: rounds[idx].mean(),
    }
    return {k: list(bootstrap_ci(s, len(dialogues), resamples, seed)) for k, s in statistics.items()}
