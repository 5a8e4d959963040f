"""Cross-evaluation: a run's policy scored on another simulator gives what vrb.evaluate gives there."""

import json
import os
import subprocess
import sys

import pytest

ENV = {**os.environ, "TQDM_DISABLE": "1"}


def run(module: str, *args: str) -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, "-m", module, *args], capture_output=True, text=True, timeout=300, env=ENV
    )


@pytest.mark.slow
def test_cross_evaluation_matches_evaluate_and_tabulates(tmp_path):
    out = tmp_path / "mle-run"
    trained = run("vrb.train", "--algo", "mle", "--out", str(out), "--set", "mle_epochs=1")
    assert trained.returncode == 0, trained.stderr[-2000:]
    evaluated = run(
        "vrb.evaluate",
        "--checkpoint",
        str(out / "best.pt"),
        "--dialogues",
        "4",
        "--seed",
        "7",
        "--transcripts",
        "0",
        "--out",
        str(tmp_path / "eval.json"),
    )
    assert evaluated.returncode == 0, evaluated.stderr[-2000:]

    crossed = run(
        "experiments.cross",
        str(out),
        str(out),
        "--simulators",
        "agenda",
        "--dialogues",
        "4",
        "--seed",
        "7",
        "--checkpoints",
        "best",
        "--jobs",
        "2",
        "--out",
        str(tmp_path / "cross"),
    )
    assert crossed.returncode == 0, crossed.stderr[-2000:]
    runs = json.loads((tmp_path / "cross.json").read_text())
    expected = json.loads((tmp_path / "eval.json").read_text())["summary"]
    assert [(r["policy"], r["trained_on"], r["checkpoint"]) for r in runs] == [("MLE", "agenda", "best")] * 2
    for key in ("dialogues", "paper_success", "paper_turns", "success"):
        assert runs[0]["on"]["agenda"][key] == expected[key]
    caption, _, header, _, row = (tmp_path / "cross.md").read_text().splitlines()
    assert "95% Student-t interval over seeds" in caption
    assert header.startswith("| policy | trained on | checkpoint | success on agenda |")
    assert row.startswith("| MLE | agenda | best | ") and row.endswith("| 2 |")
    assert f"{100 * expected['paper_success']:.1f} ± 0.0" in row
    assert (tmp_path / "cross.png").read_bytes().startswith(b"\x89PNG")


@pytest.mark.slow
def test_a_folder_without_best_pt_is_named(tmp_path):
    done = run("experiments.cross", str(tmp_path), "--dialogues", "1")
    assert done.returncode == 2
    assert (
        done.stderr.strip()
        == f"error: no best.pt or last.pt in {tmp_path}; expected a run folder written by vrb.train"
    )


def test_policies_are_named_as_the_paper_table_names_them():
    from experiments.cross import policy_name

    assert policy_name({"algo": "vrb", "env_reward": "user"}) == "VRB"
    assert policy_name({"algo": "vrb", "env_reward": "none"}) == "VRB (learned reward only)"
    assert (
        policy_name({"algo": "ppo", "env_reward": "evaluator"}) == "PPO (evaluator reward: the paper's PPO)"
    )
    assert policy_name({"algo": "acer"}) == "ACER"


def _entry(policy, algo, trained_on, checkpoint, success):
    summary = {"paper_success": success, "paper_inform_f1": 0.5, "paper_match": 0.5, "paper_turns": 6.0}
    return {
        "policy": policy,
        "algo": algo,
        "trained_on": trained_on,
        "checkpoint": checkpoint,
        "on": {"agenda": summary},
    }


RUNS = [
    _entry("PPO", "ppo", "agenda", "best", 0.9),
    _entry("VRB", "vrb", "vhus", "last", 0.3),
    _entry("VRB", "vrb", "agenda", "last", 0.8),
    _entry("VRB", "vrb", "agenda", "best", 0.94),
    _entry("VRB", "vrb", "agenda", "best", 0.96),
]


def test_the_table_has_a_row_per_policy_user_and_checkpoint_in_the_papers_order():
    from experiments.cross import table

    runs = RUNS
    rows = [line for line in table(runs, ["agenda"]).splitlines()[2:]]
    assert [row.split(" | ")[:3] for row in rows] == [
        ["| VRB", "agenda", "best"],
        ["| VRB", "agenda", "last"],
        ["| VRB", "vhus", "last"],
        ["| PPO", "agenda", "best"],
    ]
    assert rows[0].split(" | ")[3] == "95.0 ± 12.7" and rows[0].endswith("| 2 |")


def test_the_plot_shows_each_best_checkpoint_per_training_user_in_the_tables_order(tmp_path, monkeypatch):
    from experiments import cross

    drawn = {}
    monkeypatch.setattr(
        cross, "plot_transfer", lambda scores, metric, path, unit: drawn.update(scores) or True
    )
    runs = [*RUNS, _entry("VRB", "vrb", "vhus", "best", 0.25), _entry("MLE", "mle", "vhus", "best", 0.2)]
    assert cross.plot(runs, ["agenda"], tmp_path / "cross.png")
    assert list(drawn) == ["trained on the agenda user", "trained on the vhus user"]
    agenda, vhus = drawn.values()
    assert list(agenda) == ["VRB", "PPO"] and list(vhus) == ["VRB", "MLE"]  # last.pt left out
    mean, ci, n = agenda["VRB"]["agenda"]
    assert (round(mean, 6), round(ci, 1), n) == (95.0, 12.7, 2) and vhus["MLE"]["agenda"][:1] == (20.0,)


def test_the_transfer_plot_is_drawn_and_nothing_is_drawn_without_scores(tmp_path):
    from experiments.plots import plot_transfer

    scores = {
        "trained on the agenda user": {"VRB": {"agenda": (95.0, 1.0, 5), "vhus": (20.0, float("nan"), 1)}}
    }
    assert plot_transfer(scores, "paper_success", tmp_path / "t.png", unit="%")
    assert (tmp_path / "t.png").read_bytes().startswith(b"\x89PNG")
    assert not plot_transfer({"trained on the vhus user": {}}, "paper_success", tmp_path / "none.png")
    assert not (tmp_path / "none.png").exists()
