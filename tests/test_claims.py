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


def trial(seed: int, success: float, **axes) -> TrialRecord:
    return TrialRecord(
        trial_id="-".join(f"{k}{v}" for k, v in axes.items()) + f"-s{seed}",
        status="finished",
        attempts=1,
        axes={**axes, "seed": seed},
        config=make_config(seed=seed, **axes).to_dict(),
        metrics={"paper_success": success},
        versions={},
        error="",
    )


def test_robustness_compares_drops_and_the_ablation_compares_the_multiplier(tmp_path):
    robustness = ResultStore(tmp_path / "robustness")
    drops = {"vrb": (0.90, 0.80), "gdpl": (0.90, 0.60)}  # VRB loses 10 points, GDPL 30
    for algo, (clean, noisy) in drops.items():
        for noise, level in ((0.0, clean), (0.3, noisy)):
            for seed, jitter in enumerate((-0.01, 0.0, 0.01)):
                robustness.append(trial(seed, level + jitter, algo=algo, user_noise=noise))
    ablation = ResultStore(tmp_path / "ablation")
    for phi0, alpha_phi, level in ((0.0, 0.001, 0.85), (0.0, 0.0, 0.85), (1.0, 0.0, 0.60)):
        for seed, jitter in enumerate((-0.02, 0.0, 0.02)):
            axes = {"algo": "vrb", "env_reward": "none", "ic": 0.5, "alpha_phi": alpha_phi, "phi0": phi0}
            ablation.append(trial(seed, level + jitter, **axes))
    table = claims.claims_table(tmp_path)
    assert (
        "| (3) VRB degrades least under a noisy user | drop of GDPL − drop of VRB (p = 0 → 0.3) | 20.0 ± "
        in table
    )
    assert "| confirmed |" in table.split("drop of GDPL")[1].splitlines()[0]
    lagrange = "Lagrange (I_c 0.5, learned reward only)"
    assert f"| {lagrange} − no bottleneck (learned reward only) | 0.0 ± " in table
    assert f"| {lagrange} − fixed φ 1.0 (learned reward only) | 25.0 ± " in table
    assert "fixed φ 0.1" not in table and "(1)" not in table  # no such cells committed: left out
