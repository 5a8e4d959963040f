"""The researcher's command lines: run folders, presets, --show-config, one-line errors; the intervals."""

import math
import os
import subprocess
import sys

import pytest

from vrb import runs
from vrb.algorithms import make_config
from vrb.checkpoint import save_checkpoint
from vrb.errors import UsageError
from vrb.stats import bootstrap_ci, headline_intervals, mean_ci, t_quantile_975
from vrb.train import parse_config

ENV = {**os.environ, "TQDM_DISABLE": "1"}


def cli(module: str, *args: str) -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, "-m", module, *args], capture_output=True, text=True, env=ENV, timeout=120
    )


def test_run_folders_never_collide_and_resume_finds_the_newest(tmp_path):
    cfg = make_config(algo="ppo", seed=2)
    first = runs.new_run_folder(tmp_path, cfg, now=0)
    assert first.name.startswith("ppo-agenda-s2-19700101-")
    first.mkdir()
    second = runs.new_run_folder(tmp_path, cfg, now=0)
    assert second.name == first.name + "-2"
    with pytest.raises(UsageError, match="nothing to resume"):
        runs.latest_run(tmp_path, cfg)
    for folder in (first, second):
        folder.mkdir(exist_ok=True)
        (folder / "last.pt").write_bytes(b"x")
    os.utime(first / "last.pt", (0, 0))
    os.utime(first, (0, 0))
    assert runs.latest_run(tmp_path, cfg) == second


def test_the_cli_picks_a_fresh_folder_and_resumes_the_newest_of_that_name(tmp_path):
    cfg, out, resume = parse_config(["--algo", "ppo", "--runs", str(tmp_path)])
    assert out.parent == tmp_path and out.name.startswith("ppo-agenda-s0-") and not resume
    assert cfg.out_dir == out
    save_checkpoint(out / "last.pt", config=cfg, epoch=0, state={})
    _, again, _ = parse_config(["--algo", "ppo", "--runs", str(tmp_path)])
    assert again != out  # a second run never lands in the first one's folder
    _, resumed, resume = parse_config(["--algo", "ppo", "--runs", str(tmp_path), "--resume"])
    assert resumed == out and resume


def test_resume_takes_the_runs_own_settings_and_only_lets_the_run_length_and_place_change(tmp_path):
    run = tmp_path / "run"
    saved = make_config(algo="gdpl", seed=4, minibatch_size=64, out_dir=str(run))
    save_checkpoint(run / "last.pt", config=saved, epoch=3, state={})
    cfg, out, resume = parse_config(["--resume", str(run), "--epochs", "300", "--set", "workers=2"])
    assert (out, resume) == (run, True)
    assert cfg.replace(epochs=saved.epochs, workers=saved.workers) == saved  # nothing retyped, nothing lost
    assert (cfg.epochs, cfg.workers) == (300, 2)
    with pytest.raises(UsageError, match=r"minibatch_size 64 \(this command: 32\).*only epochs"):
        parse_config(["--resume", str(run), "--set", "minibatch_size=32"])
    with pytest.raises(UsageError, match="is a gdpl run, not vrb"):
        parse_config(["--resume", str(run), "--algo", "vrb"])
    with pytest.raises(UsageError, match="keeps its own settings"):
        parse_config(["--resume", str(run), "--config", "convlab2"])
    with pytest.raises(UsageError, match="nothing to resume"):
        parse_config(["--resume", str(tmp_path)])


def test_presets_load_by_name_or_file_and_flags_win(tmp_path):
    assert {"ours", "convlab2", "gdpl_original"} <= set(runs.preset_names())
    cfg, _, _ = parse_config(
        ["--algo", "gdpl", "--config", "convlab2", "--set", "mle_epochs=3", "--out", str(tmp_path)]
    )
    assert cfg.expert_states == "corpus" and cfg.env_reward == "evaluator" and cfg.options.decoder == "greedy"
    assert cfg.options.estimator_weight_clip == 0.0 and cfg.options.mle_epochs == 3  # --set beats the preset
    ppo, _, _ = parse_config(["--algo", "ppo", "--config", "convlab2", "--out", str(tmp_path)])
    assert ppo.options.mle_pos_weight == 5.0  # the estimator's fields are left out for PPO
    original, _, _ = parse_config(["--algo", "gdpl", "--config", "gdpl_original", "--out", str(tmp_path)])
    assert original.options.rollout_decoding == "sample" and original.options.decoder == "greedy"
    ours, _, _ = parse_config(["--config", "ours", "--out", str(tmp_path)])
    assert ours == parse_config(["--out", str(tmp_path)])[0]
    own = tmp_path / "mine.yaml"
    own.write_text("algo: ppo\nseed: 5\nbc_coef: 0.3\n")
    mine, _, _ = parse_config(["--config", str(own), "--out", str(tmp_path)])
    assert (mine.algo, mine.seed, mine.options.bc_coef) == ("ppo", 5, 0.3)
    own.write_text("algo: ppo\nbc_coeff: 0.3\n")
    with pytest.raises(UsageError, match="unknown config field 'bc_coeff'"):
        parse_config(["--config", str(own), "--out", str(tmp_path)])


@pytest.mark.parametrize(
    ("module", "args", "message"),
    [
        ("vrb.train", ["--config", "nosuch"], "no preset of that name"),
        ("vrb.train", ["--simulator", "nosuch"], "invalid choice"),
        ("vrb.train", ["--set", "seed"], "expected FIELD=VALUE"),
        ("vrb.evaluate", ["--checkpoint", "/nonexistent"], "does not exist"),
        ("vrb.evaluate", ["--policy", "rule", "--simulator", "x"], "invalid choice"),
        ("vrb.evaluate", ["--policy", "rule", "--user-noise", "1.5"], "expected a probability in [0, 1]"),
        ("experiments.frontier", ["/nonexistent", "--out", "/tmp/x"], "does not exist"),
        ("experiments.grid", ["--variant", "novalue"], "expected NAME:FIELD=VALUE"),
    ],
)
@pytest.mark.slow
def test_bad_input_is_one_line_and_exit_2(module, args, message):
    done = cli(module, *args)
    lines = done.stderr.strip().splitlines()
    assert done.returncode == 2 and len(lines) == 1 and message in lines[0], done.stderr


@pytest.mark.slow
def test_show_config_prints_every_field_with_its_meaning():
    done = cli("vrb.train", "--algo", "vrb", "--show-config")
    assert done.returncode == 0
    rows = {line.split()[0]: line for line in done.stdout.splitlines()}
    assert {"ic", "alpha_phi", "bc_coef", "decoder", "seed"} <= set(rows)
    assert "0.5" in rows["ic"] and "bound" in rows["ic"]
    assert "acer_q_lr" not in rows


def test_student_t_interval_over_seeds():
    mean, half = mean_ci([0.8, 0.9, 1.0])
    assert mean == pytest.approx(0.9) and half == pytest.approx(4.303 * 0.1 / math.sqrt(3))
    assert t_quantile_975(4) == 2.776 and abs(t_quantile_975(200) - 1.972) < 1e-3
    assert math.isnan(mean_ci([0.5])[1]) and mean_ci([None, 0.5, 0.7])[0] == pytest.approx(0.6)


def test_bootstrap_intervals_cover_pooled_metrics():
    dialogues = [
        {
            "paper_success": i % 2,
            "rounds": 5 + i % 3,
            "inform_counts": [2, i % 2, 0],
            "book_scores": [1.0] * (i % 2),
        }
        for i in range(200)
    ]
    intervals = headline_intervals(dialogues, resamples=300)
    assert intervals["paper_success"][0] < 0.5 < intervals["paper_success"][1]
    assert intervals["paper_match"] == [1.0, 1.0]
    low, high = intervals["paper_inform_f1"]
    assert low < 2 * 400 / (2 * 400 + 100) < high
    assert all(math.isnan(v) for v in bootstrap_ci(lambda idx: 0.0, 1))


def test_the_shipped_policies_play_from_a_fresh_clone(capsys):
    from vrb import demo, evaluate

    assert runs.pretrained_names() == ["ppo", "vrb"]
    for name in runs.pretrained_names():
        assert runs.pretrained_path(name).stat().st_size < 500_000
    assert evaluate.main(["--pretrained", "vrb", "--dialogues", "3", "--transcripts", "0"]) == 0
    assert "paper_success" in capsys.readouterr().out
    assert demo.main(["--pretrained", "ppo", "--vs-rule", "--seed", "2"]) == 0
    assert "rule policy" in capsys.readouterr().out
    with pytest.raises(UsageError, match=r"no such policy; expected one of \['ppo', 'vrb'\]"):
        runs.pretrained_path("gdpl")


@pytest.mark.parametrize(
    "args, expected",
    [
        (["CHECKPOINT", "../../escape"], "expected one plain folder name"),
        (["CHECKPOINT", "x", "--dialogues", "0"], "--dialogues 0: expected a positive number"),
        (["NOSUCH", "x"], "does not exist"),
    ],
)
def test_shipping_a_policy_refuses_bad_input_and_writes_nothing(
    tmp_path, capsys, monkeypatch, args, expected
):
    from experiments import pretrained

    monkeypatch.setattr(pretrained, "PRETRAINED_DIR", tmp_path / "pretrained")
    monkeypatch.setattr(pretrained.ship, "__defaults__", (1000, tmp_path / "pretrained"))
    real = str(runs.pretrained_path("vrb"))
    argv = [real if a == "CHECKPOINT" else str(tmp_path / "nosuch.pt") if a == "NOSUCH" else a for a in args]
    assert pretrained.main(argv) == 2
    err = capsys.readouterr().err
    assert expected in err and len(err.strip().splitlines()) == 1
    assert not (tmp_path / "pretrained").exists() or not any((tmp_path / "pretrained").iterdir())
    assert not (tmp_path.parent / "escape").exists()


def test_a_policy_is_scored_under_its_own_user_noise_unless_told(tmp_path):
    """The evaluation plays the user the policy trained with, noise included; --user-noise overrides it."""
    from vrb.evaluate import evaluate

    clean = evaluate(policy="rule", dialogues=30)
    noisy = evaluate(policy="rule", dialogues=30, user_noise=0.3)
    assert (clean.user_noise, noisy.user_noise) == (0.0, 0.3)
    assert noisy.to_json()["user_noise"] == 0.3
    assert noisy.summary["paper_match"] < clean.summary["paper_match"]  # the noise misleads the tracker
    own = evaluate(runs.pretrained_path("vrb"), dialogues=5)
    assert own.user_noise == 0.0
