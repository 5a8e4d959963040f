"""The README's claims table: pairwise Welch comparisons of committed cells, verdicts by where the interval lies."""

import math

import pytest

from experiments import claims
from experiments.store import ResultStore, TrialRecord
from vrb.algorithms import make_config
from vrb.stats import t_quantile_975

SUCCESS = {  # (algo, env_reward axis) -> per-seed success on the agenda user
    ("vrb", None): [0.95, 0.96, 0.97],
    ("gdpl", None): [0.80, 0.81, 0.82],
    ("ppo", None): [0.90, 0.96, 0.99],
    ("ppo", "evaluator"): [0.97, 0.98, 0.99],
}


def record(algo: str, env_reward: str | None, seed: int, success: float) -> TrialRecord:
    fields = {"env_reward": env_reward} if env_reward else {}
    axes = {"algo": algo, "simulator": "agenda", "seed": seed, **fields}
    return TrialRecord(
        trial_id=f"{algo}-{env_reward}-s{seed}",
        status="finished",
        attempts=1,
        axes=axes,
        config=make_config(algo=algo, seed=seed, **fields).to_dict(),
        metrics={"paper_success": success},
        versions={},
        error="",
    )


@pytest.fixture
def results(tmp_path):
    store = ResultStore(tmp_path / "paper_table")
    for (algo, env_reward), values in SUCCESS.items():
        for seed, success in enumerate(values):
            store.append(record(algo, env_reward, seed, success))
    return tmp_path


def test_each_comparison_is_a_welch_interval_and_its_verdict_says_where_it_lies(results):
    table = claims.claims_table(results)
    half = 100 * t_quantile_975(4) * math.sqrt(2 * 0.0001 / 3)  # equal spreads: Welch's df is 4
    assert f"| VRB − GDPL | 15.0 ± {half:.1f} | confirmed |" in table
    assert "| VRB − the paper's PPO (evaluator reward) | -2.0 ± " in table and "reversed" in table
    assert "| VRB − PPO (user's reward) | 1.0 ± " in table  # PPO's seeds spread: the interval holds 0
    assert "| not confirmed |" in table
    assert "learned reward only" not in table and "VHUS" not in table  # cells not in the store: left out


def test_verdicts():
    assert claims.verdict(0.05, 0.02) == "confirmed"
    assert claims.verdict(-0.05, 0.02) == "reversed"
    assert claims.verdict(0.01, 0.02) == "not confirmed"
    assert claims.verdict(0.01, float("nan")).startswith("not confirmed")
