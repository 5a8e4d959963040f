"""Refactoring must not change what a seed learns: tiny runs of every algorithm reproduce pinned validation
numbers (recorded with ``python tests/test_pinned_behaviour.py --record`` before a refactor).

Pinned on this project's CI machine type (CPU torch 2.13.0); another CPU or torch build may round differently.
"""

from __future__ import annotations

import json
import sys
from pathlib import Path

import pytest

PINNED = Path(__file__).parent / "data" / "pinned_validation.json"
ALGOS = ("mle", "ppo", "gdpl", "vrb", "acer", "aldm", "gp_mbcm")
TINY = {"epochs": 2, "steps_per_epoch": 32, "num_envs": 2, "eval_every": 1, "eval_dialogues": 6}
OWN = {  # each algorithm's own fields; ACER and GP-MBCM were pinned on the evaluator's reward
    "mle": {"mle_epochs": 3},
    "ppo": {"mle_epochs": 3},
    "gdpl": {"mle_epochs": 3},
    "vrb": {"mle_epochs": 3},
    "acer": {"mle_epochs": 3, "env_reward": "evaluator"},
    "aldm": {"mle_epochs": 3, "aldm_pretrain_epochs": 1},
    "gp_mbcm": {"gp_num_actions": 5, "env_reward": "evaluator"},
}
KEYS = ("start", "best", "final")


def tiny_run(algo: str, out: Path) -> dict:
    from vrb.algorithms import make_config
    from vrb.train import run

    record = run(make_config(algo=algo, seed=3, **TINY, **OWN[algo]), out)
    return {key: record[key] for key in KEYS if key in record}


@pytest.mark.parametrize("algo", ALGOS)
def test_a_seed_reproduces_its_pinned_validation_numbers(algo, tmp_path):
    pinned = json.loads(PINNED.read_text())[algo]
    assert json.loads(json.dumps(tiny_run(algo, tmp_path / algo), default=float)) == pinned


if __name__ == "__main__" and sys.argv[1:] == ["--record"]:
    import tempfile

    with tempfile.TemporaryDirectory() as folder:
        results = {algo: tiny_run(algo, Path(folder) / algo) for algo in ALGOS}
    PINNED.write_text(json.dumps(results, indent=1, default=float) + "\n")
    print(f"wrote {PINNED}")
