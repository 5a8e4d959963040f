"""The papers' claims judged on the committed stores, for the README's claims table (``experiments.readme``).

A claim is a set of comparisons "A beats B": the difference of A's and B's mean success (papers' definition,
``best.pt``, in points) over their seeds with its 95% Welch interval (``vrb.stats.contrast_ci``: separate runs,
unequal variances) — or, for robustness, the difference of two learners' drops from a clean to a noisy user —
and a verdict: *confirmed* when the interval lies above 0, *reversed* when it lies below 0, *not confirmed* when
it holds 0. A comparison whose cells are not in a committed store yet is left out, so the
table grows as the experiments land; nothing in it is typed by hand.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from experiments import report
from experiments.store import ResultStore
from vrb.stats import contrast_ci

METRIC = "paper_success"
DEFAULT_REWARD = (None, "user")  # a cell without an env_reward axis learned from the user's reward


@dataclass(frozen=True)
class Side:
    """One cell of a store, named in words: the grid values that pick it."""

    name: str
    store: str
    key: Mapping[str, Any]

    def find(self, cells: Sequence[report.Cell]) -> report.Cell | None:
        for cell in cells:
            wanted = {"user_noise": 0.0, "env_reward": "user", **self.key}
            values = {**cell.key, "env_reward": cell.key.get("env_reward") or "user"}
            if all(values.get(name) == value for name, value in wanted.items()):
                return cell
        return None


def _sides(simulator: str, setting: str) -> dict[str, Side]:
    """VRB, GDPL and both PPOs on one user; ``setting`` "mixed" (the defaults) or "pure" (learned reward only)."""
    reward = {"mixed": "user", "pure": "none"}[setting]
    words = {"mixed": "", "pure": ", learned reward only"}[setting]
    return {
        "vrb": Side(
            f"VRB{words}", "paper_table", {"algo": "vrb", "simulator": simulator, "env_reward": reward}
        ),
        "gdpl": Side(
            f"GDPL{words}", "paper_table", {"algo": "gdpl", "simulator": simulator, "env_reward": reward}
        ),
        "ppo": Side("PPO (user's reward)", "paper_table", {"algo": "ppo", "simulator": simulator}),
        "paper_ppo": Side(
            "the paper's PPO (evaluator reward)",
            "paper_table",
            {"algo": "ppo", "simulator": simulator, "env_reward": "evaluator"},
        ),
    }


@dataclass(frozen=True)
class Comparison:
    """``name``: what the difference says; ``terms``: the cells it combines, each with its weight."""

    name: str
    terms: tuple[tuple[Side, float], ...]


def beats(better: Side, worse: Side) -> Comparison:
    return Comparison(f"{better.name} − {worse.name}", ((better, 1.0), (worse, -1.0)))


def at_noise(side: Side, noise: float) -> Side:
    return Side(side.name, side.store, {**side.key, "user_noise": noise})


def degrades_less(learner: Side, other: Side, noisy: float = 0.3) -> Comparison:
    """other's drop from p = 0 to ``noisy`` minus learner's: above 0 when the learner degrades less."""
    terms = (
        (at_noise(other, 0.0), 1.0),
        (at_noise(other, noisy), -1.0),
        (at_noise(learner, 0.0), -1.0),
        (at_noise(learner, noisy), 1.0),
    )
    return Comparison(f"drop of {other.name} − drop of {learner.name} (p = 0 → {noisy})", terms)


def _ordering(simulator: str) -> list[Comparison]:
    """VRB > GDPL > PPO: every pair of the chain, against either PPO, in both reward settings."""
    pairs = []
    for setting in ("mixed", "pure"):
        side = _sides(simulator, setting)
        pairs.append(beats(side["vrb"], side["gdpl"]))
        for ppo in ("ppo", "paper_ppo"):
            pairs += [beats(side["gdpl"], side[ppo]), beats(side["vrb"], side[ppo])]
    return pairs


ROBUST = {  # the robustness sweep's learners (agenda user); VRB at its default I_c
    "vrb": Side("VRB", "robustness", {"algo": "vrb", "ic": 0.5}),
    "gdpl": Side("GDPL", "robustness", {"algo": "gdpl"}),
    "ppo": Side("PPO (user's reward)", "robustness", {"algo": "ppo"}),
    "paper_ppo": Side("the paper's PPO", "robustness", {"algo": "ppo", "env_reward": "evaluator"}),
}


def _bottleneck(reward: str, ic: float) -> list[Comparison]:
    """The Lagrange multiplier (alpha_phi 1e-3 from phi 0) at ``ic`` against no bottleneck (phi fixed at 0) and a
    fixed phi, in one reward setting (the ablation sweep's cells). With phi fixed, I_c only shifts the loss by a
    constant, so those cells are run at one I_c and stand for every I_c."""
    words = {"none": "learned reward only", "user": "mixed reward"}[reward]

    def cell(name: str, alpha_phi: float, phi0: float, at_ic: float, shown: str) -> Side:
        key = {"algo": "vrb", "env_reward": reward, "ic": at_ic, "alpha_phi": alpha_phi, "phi0": phi0}
        return Side(f"{name} ({shown}{words})", "ablation", key)

    lagrange = cell("Lagrange", 0.001, 0.0, ic, f"I_c {ic}, ")
    others = (("no bottleneck", 0.0, 0.0), ("fixed φ 0.1", 0.0, 0.1), ("fixed φ 1.0", 0.0, 1.0))
    return [beats(lagrange, cell(name, alpha, phi0, 0.5, "")) for name, alpha, phi0 in others]


def _ic(noise: float) -> list[Comparison]:
    """VRB's default I_c 0.5 against the other bounds of the robustness sweep, at one noise level."""

    def at(ic: float) -> Side:
        return Side(f"I_c {ic} (p = {noise})", "robustness", {"algo": "vrb", "ic": ic, "user_noise": noise})

    return [beats(at(0.5), at(ic)) for ic in (0.1, 0.2, 1.0)]


CLAIMS: dict[str, list[Comparison]] = {
    "(1) VRB > GDPL > PPO on the agenda user": _ordering("agenda"),
    "(2) VRB > GDPL > PPO on VHUS": _ordering("vhus"),
    "(3) VRB degrades least under a noisy user": [
        degrades_less(ROBUST["vrb"], ROBUST[other]) for other in ("gdpl", "ppo", "paper_ppo")
    ],
    "(4) the Lagrange bottleneck beats none and a fixed φ": [
        c for reward in ("none", "user") for ic in (0.1, 0.5) for c in _bottleneck(reward, ic)
    ],
    "(5) I_c matters: the default 0.5 against the others": [c for p in (0.0, 0.3) for c in _ic(p)],
}


def verdict(difference: float, ci: float) -> str:
    if math.isnan(ci):
        return "not confirmed (too few seeds)"
    if difference - ci > 0:
        return "confirmed"
    if difference + ci < 0:
        return "reversed"
    return "not confirmed"


def _cells(results: Path, store: str, cache: dict[str, list[report.Cell]]) -> list[report.Cell]:
    if store not in cache:
        folder = results / store
        found = (folder / "results.sqlite").is_file()
        records = ResultStore.open_existing(folder).finished().values() if found else []
        cache[store] = report.build_cells(records)
    return cache[store]


def claims_table(results: Path) -> str:
    """The README's claims table from the stores under ``results``; comparisons without their cells left out."""
    cache: dict[str, list[report.Cell]] = {}
    lines = ["| claim | comparison | difference (points) | verdict |", "|---|---|---:|---|"]
    for claim, pairs in CLAIMS.items():
        shown = False  # the claim's words on its first row only
        for comparison in pairs:
            found = [(side.find(_cells(results, side.store, cache)), w) for side, w in comparison.terms]
            cells = [cell for cell, _ in found if cell is not None]
            if len(cells) < len(found):
                continue
            groups = [cell.values(METRIC) for cell in cells]
            difference, ci = contrast_ci(groups, [w for _, w in found])
            lines.append(
                f"| {'' if shown else claim} | {comparison.name} | "
                f"{report.format_mean_ci(difference, ci, 100, 1)} | {verdict(difference, ci)} |"
            )
            shown = True

    caption = (
        "Success (papers' definition, `best.pt`, 1000 test dialogues): difference of the means over seeds (of the "
        "drops, for robustness), in points, ± its 95% Welch interval; *confirmed* when the interval lies above 0, "
        "*reversed* below 0."
    )
    return caption + "\n\n" + "\n".join(lines)
