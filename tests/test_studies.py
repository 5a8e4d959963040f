"""docs/experiments.md's robustness and ablation tables: the cells a store holds, the drops as Welch intervals."""

import math

from experiments import studies
from experiments.store import ResultStore, TrialRecord
from vrb.algorithms import make_config
from vrb.stats import t_quantile_975


def record(trial_id: str, axes: dict, metrics: dict) -> TrialRecord:
    fields = {name: value for name, value in axes.items() if name != "seed"}
    config = make_config(simulator="agenda", seed=axes["seed"], **fields).to_dict()
    return TrialRecord(trial_id, "finished", 1, {"simulator": "agenda", **axes}, config, metrics, {}, "")


def test_robustness_rows_put_each_learners_defaults_first_and_the_drop_is_a_welch_interval(tmp_path):
    store = ResultStore(tmp_path)
    success = {  # (algo, env_reward, noise) -> per-seed success
        ("ppo", "evaluator", 0.0): [0.9, 0.9],
        ("ppo", None, 0.0): [0.96, 0.94],
        ("ppo", None, 0.3): [0.60, 0.50],
        ("vrb", None, 0.0): [0.97, 0.95],
    }
    for (algo, reward, noise), values in success.items():
        for seed, value in enumerate(values):
            axes = {"algo": algo, "seed": seed, "user_noise": noise} | (
                {"env_reward": reward} if reward else {}
            )
            metrics = {"paper_success": value, "last_paper_success": value - 0.1}
            store.append(record(f"{algo}-{reward}-{noise}-{seed}", axes, metrics))
    rows = studies.robustness_table(tmp_path).splitlines()[2:8]
    assert [row.split(" | ")[:2] for row in rows] == [
        ["| VRB (I_c 0.5)", "best"],
        ["| VRB (I_c 0.5)", "last"],
        ["| PPO", "best"],
        ["| PPO", "last"],
        ["| PPO (evaluator reward: the paper's PPO)", "best"],
        ["| PPO (evaluator reward: the paper's PPO)", "last"],
    ]
    half = 100 * t_quantile_975(1) * math.sqrt((0.0002 + 0.005) / 2)  # Welch, df rounded down to 1
    assert rows[2].endswith(
        f"| 95.0 ± {100 * t_quantile_975(1) * 0.01:.1f} | — | — | 55.0 ± 63.5 | 40.0 ± {half:.1f} | 2 |"
    )
    assert rows[0].split(" | ")[-2] == "—"  # VRB was not run under noise: no drop
    assert studies.robustness_table(tmp_path / "none") == "(no trials yet)"


def test_ablation_rows_follow_the_variants_and_skip_cells_not_run(tmp_path):
    store = ResultStore(tmp_path)
    for seed, value in enumerate([0.80, 0.82]):
        axes = {"algo": "vrb", "seed": seed, "env_reward": "none", "alpha_phi": 0.0, "phi0": 0.0, "ic": 0.5}
        metrics = {"paper_success": value, "last_paper_success": 0.5, "paper_inform_f1": 0.7, "paper_match": 0.9,
                   "paper_turns": 10.0}  # fmt: skip
        store.append(record(f"none-{seed}", axes, metrics))
    table = studies.ablation_table(tmp_path)
    assert (
        "| learned reward only | no bottleneck (φ = 0) | 81.0 ± 12.7 | 50.0 ± 0.0 | 70.0 ± 0.0 | 90.0 ± 0.0 | 10.00 ± 0.00 | 2 |"
        in table
    )
    assert "Lagrange" not in table.split("\n\n")[0] and "fixed φ" not in table.split("\n\n")[0]


def test_the_rule_policy_row_appears_when_every_noise_level_was_scored(tmp_path):
    import json

    store = ResultStore(tmp_path)
    store.append(record("ppo-0", {"algo": "ppo", "seed": 0, "user_noise": 0.0}, {"paper_success": 0.9}))
    (tmp_path / "reference").mkdir()
    for p, success in zip(studies.NOISE_LEVELS, (0.98, 0.78, 0.64, 0.58), strict=True):
        scored = {
            "summary": {"paper_success": success},
            "intervals": {"paper_success": [success - 0.01, success + 0.01]},
        }
        (tmp_path / "reference" / f"rule-noise{p}.json").write_text(json.dumps(scored))
    assert (
        "| Rule policy | — | 98.0 [97.0, 99.0] | 78.0 [77.0, 79.0] | 64.0 [63.0, 65.0] | 58.0 [57.0, 59.0] | 40.0 | 1 run |"
        in (studies.robustness_table(tmp_path))
    )
    (tmp_path / "reference" / "rule-noise0.2.json").unlink()
    assert "Rule policy |" not in studies.robustness_table(tmp_path)
