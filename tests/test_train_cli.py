"""The training and evaluation command lines: a tiny run end to end, resume after kill -9, and bad input."""

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from vrb.checkpoint import load_checkpoint

TINY = [
    "--epochs",
    "3",
    "--steps-per-epoch",
    "64",
    "--num-envs",
    "2",
    "--set",
    "mle_epochs=1",
    "--set",
    "eval_every=1",
    "--set",
    "eval_dialogues=3",
]
ENV = {**os.environ, "TQDM_DISABLE": "1"}


DIAGNOSTICS = {
    f"diagnostics/{name}"
    for name in (
        "probe_auc",
        "reward_logpi_share",
        "greedy_acts_per_turn",
        "empty_greedy_rate",
        "entropy",
        "f_expert",
        "f_policy",
        "kl",
        "ic",
        "phi",
    )
}


def scalar_tags(run_dir: Path) -> set[str]:
    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

    events = EventAccumulator(str(run_dir))
    events.Reload()
    return set(events.Tags()["scalars"])


def single_point_charts(run_dir: Path) -> list[str]:
    """Scalar tags with fewer than two points, in the run and its sub-runs (mle/, env_steps/)."""
    from tensorboard.backend.event_processing.event_multiplexer import EventMultiplexer

    events = EventMultiplexer()
    events.AddRunsFromDirectory(str(run_dir))
    events.Reload()
    return [
        f"{name}: {tag}"
        for name, tags in events.Runs().items()
        for tag in tags.get("scalars", [])
        if len(events.Scalars(name, tag)) < 2
    ]


def run(module: str, *args: str, timeout: int = 300) -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, "-m", module, *args], capture_output=True, text=True, timeout=timeout, env=ENV
    )


@pytest.mark.slow
def test_tiny_vrb_run_writes_checkpoints_results_and_tensorboard(tmp_path):
    out = tmp_path / "run"
    done = run("vrb.train", "--algo", "vrb", "--out", str(out), *TINY)
    assert done.returncode == 0, done.stderr[-2000:]
    assert {"config.json", "last.pt", "best.pt", "mle.pt", "results.json"} <= {p.name for p in out.iterdir()}
    assert any(p.name.startswith("events.out.tfevents") for p in out.iterdir())
    assert scalar_tags(out) >= DIAGNOSTICS
    # a chart of one point says nothing (results.json holds such numbers); mle/ has one point an epoch, one here
    assert not [chart for chart in single_point_charts(out) if not chart.startswith("mle:")]
    assert not [tag for tag in scalar_tags(out / "mle") if "test_" in tag]
    assert load_checkpoint(out / "last.pt").epoch == 2
    assert json.loads((out / "results.json").read_text())["training_split"] in ("train", "val")
    evaluated = run(
        "vrb.evaluate",
        "--checkpoint",
        str(out / "best.pt"),
        "--dialogues",
        "3",
        "--transcripts",
        "1",
        "--out",
        str(tmp_path / "eval.json"),
    )
    assert evaluated.returncode == 0, evaluated.stderr[-2000:]
    assert "success" in evaluated.stdout and "user:" in evaluated.stdout
    assert json.loads((tmp_path / "eval.json").read_text())["summary"]["dialogues"] == 3
    sampled = [
        run(
            "vrb.evaluate",
            "--checkpoint",
            str(out / "last.pt"),
            "--dialogues",
            "3",
            "--decoder",
            "sample",
            "--transcripts",
            "0",
            "--out",
            str(tmp_path / f"sampled{i}.json"),
        )
        for i in range(2)
    ]
    assert all(done.returncode == 0 for done in sampled), sampled[0].stderr[-2000:]
    first, second = (json.loads((tmp_path / f"sampled{i}.json").read_text())["dialogues"] for i in range(2))
    assert first == second  # sampling is seeded per dialogue
    watched = run("vrb.demo", "--checkpoint", str(out), "--vs-rule", "--seed", "2")
    assert watched.returncode == 0, watched.stderr[-2000:]
    assert "user goal" in watched.stdout and "rule policy" in watched.stdout and "system:" in watched.stdout


@pytest.mark.slow
def test_resume_after_kill_continues_from_the_last_finished_epoch(tmp_path):
    out = tmp_path / "run"
    args = [
        "--algo",
        "gdpl",
        "--out",
        str(out),
        "--epochs",
        "40",
        "--steps-per-epoch",
        "64",
        "--num-envs",
        "2",
        "--set",
        "mle_epochs=1",
        "--set",
        "eval_every=100",
        "--set",
        "eval_dialogues=2",
    ]
    process = subprocess.Popen(
        [sys.executable, "-m", "vrb.train", *args],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
        env=ENV,
    )
    try:
        deadline = time.time() + 240
        while time.time() < deadline:  # wait until a few epochs are checkpointed, then kill mid-run
            if (out / "last.pt").is_file() and load_checkpoint(out / "last.pt").epoch >= 2:
                break
            time.sleep(0.2)
        else:
            pytest.fail("the run wrote no checkpoint in time")
    finally:
        process.send_signal(signal.SIGKILL)
        process.wait()
    killed_at = load_checkpoint(out / "last.pt").epoch
    assert killed_at < 39, "the run finished before it could be killed"
    again = run("vrb.train", *args)
    assert again.returncode == 2 and "--resume" in again.stderr  # no silent overwrite of a run
    resumed = run("vrb.train", *args, "--resume")
    assert resumed.returncode == 0, resumed.stderr[-2000:]
    assert load_checkpoint(out / "last.pt").epoch == 39
    assert f"resuming {out / 'last.pt'} at epoch {killed_at + 1}" in resumed.stderr


@pytest.mark.parametrize(
    "args, message",
    [
        (["--simulator", "nosuch"], "simulator"),
        (["--algo", "nosuch"], "algo"),
        (["--epochs", "-3"], "epochs"),
        (["--set", "gamma=2"], "gamma"),
        (["--set", "nosuchfield=1"], "nosuchfield"),
        (["--resume", "--out", "/nonexistent/run"], "resume"),
    ],
)
@pytest.mark.slow
def test_train_bad_input_is_one_line_and_exit_2(args, message):
    done = run("vrb.train", *args, timeout=60)
    assert done.returncode == 2
    lines = done.stderr.strip().splitlines()
    assert len(lines) == 1 and message in lines[0]


@pytest.mark.slow
def test_evaluate_bad_input_is_one_line_and_exit_2(tmp_path):
    corrupt = tmp_path / "corrupt.pt"
    corrupt.write_bytes(b"VRBCKPT 1 0000\nnot a checkpoint")
    for args, message in [
        (["--checkpoint", str(tmp_path / "missing.pt")], "does not exist"),
        (["--checkpoint", str(corrupt)], str(corrupt)),
        (["--policy", "rule", "--simulator", "nosuch"], "simulator"),
        (["--policy", "rule", "--dialogues", "0"], "dialogues"),
    ]:
        done = run("vrb.evaluate", *args, timeout=60)
        assert done.returncode == 2, (args, done.stderr)
        assert message in done.stderr.strip().splitlines()[-1]


@pytest.mark.slow
def test_training_split_is_named_in_the_log(tmp_path):
    done = run(
        "vrb.train",
        "--algo",
        "mle",
        "--out",
        str(tmp_path / "mle"),
        "--set",
        "mle_epochs=1",
        "--set",
        "eval_dialogues=2",
    )
    assert done.returncode == 0, done.stderr[-2000:]
    assert "transitions from the val split" in done.stderr or "from the train split" in done.stderr
    assert Path(tmp_path / "mle" / "best.pt").is_file()
