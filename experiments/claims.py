"""The papers' claims judged on the committed stores, for the README's claims table (``experiments.readme``).

A claim is a set of comparisons "A beats B": the difference of A's and B's mean success (papers' definition,
``best.pt``, in points) over their seeds with its 95% Welch interval (``vrb.stats.difference_ci``: the two are
separate runs), and a verdict — *confirmed* when the interval lies above 0, *reversed* when it lies below 0,
*not confirmed* when it holds 0. A comparison whose cells are not in a committed store yet is left out, so the
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
from vrb.stats import difference_ci

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


def _ordering(simulator: str) -> list[tuple[Side, Side]]:
    """VRB > GDPL > PPO: every pair of the chain, against either PPO, in both reward settings."""
    pairs = []
    for setting in ("mixed", "pure"):
        side = _sides(simulator, setting)
        pairs.append((side["vrb"], side["gdpl"]))
        for ppo in ("ppo", "paper_ppo"):
            pairs += [(side["gdpl"], side[ppo]), (side["vrb"], side[ppo])]
    return pairs


CLAIMS: dict[str, list[tuple[Side, Side]]] = {
    "(1) VRB > GDPL > PPO on the agenda user": _ordering("agenda"),
    "(2) VRB > GDPL > PPO on VHUS": _ordering("vhus"),
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
        for better, worse in pairs:
            a = better.find(_cells(results, better.store, cache))
            b = worse.find(_cells(results, worse.store, cache))
            if a is None or b is None:
                continue
            difference, ci = difference_ci(a.values(METRIC), b.values(METRIC))
            lines.append(
                f"| {'' if shown else claim} | {better.name} − {worse.name} | "
                f"{report.format_mean_ci(difference, ci, 100, 1)} | {verdict(difference, ci)} |"
            )
            shown = True
    caption = (
        "Success (papers' definition, `best.pt`, 1000 test dialogues): difference of the two means over seeds, "
        "in points, ± its 95% Welch interval; *confirmed* when the interval lies above 0, *reversed* below 0."
    )
    return caption + "\n\n" + "\n".join(lines)
