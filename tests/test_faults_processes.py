"""Fault injection, caches and processes (nothing lost, nothing mixed): a VHUS training cut short or a
damaged cached model, a second process on a run or sweep folder, a killed driver, a trial retried. Each test
produces the fault first, then asserts the outcome: nothing partial is used as complete, a damaged cache is
rebuilt, a second process is refused in one line or waits, nothing of two processes mixes, no log is lost. The
caches a test damages are private copies (``tmp_path``); the shared caches are only read.
"""

from __future__ import annotations

import json
import logging
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
import torch
from faults_support import (
    ENV,
    REPO_ROOT,
    TINY_VHUS,
    RunsCommand,
    dead,
    holding,
    one_line_error,
    wait_for,
)

from envs.fileio import hold_lock
from envs.vhus import cache as vhus_cache
from envs.vhus import train as vhus_train
from envs.vhus.corpus import Vocabs, encode_corpus
from envs.vhus.model import VHUS, VHUSConfig
from envs.vhus.simulator import VHUSUser
from experiments.sweep import cli as sweep_cli
from experiments.sweep import driver as sweep_driver
from experiments.sweep import trial as sweep_trial
from vrb import train as vrb_train

pytestmark = pytest.mark.faults

# -- 1. VHUS: a training cut short, a damaged cache -------------------------------------------------------------


@pytest.fixture
def tiny_vhus_data(mwdata, monkeypatch):
    """VHUS training on 24 dialogues of each split with a tiny network: a few seconds, same code path."""
    real = encode_corpus
    monkeypatch.setattr(
        vhus_train, "encode_corpus", lambda corpus, vocabs: real(dict(list(corpus.items())[:24]), vocabs)
    )
    return mwdata


def tiny_model(vocabs: Vocabs) -> VHUS:
    torch.manual_seed(0)
    sizes = {"goal_vocab": len(vocabs.goal), "sys_vocab": len(vocabs.sys), "usr_vocab": len(vocabs.usr)}
    return VHUS(VHUSConfig(**sizes, **TINY_VHUS))


@pytest.mark.slow
def test_a_vhus_training_cut_short_leaves_nothing_in_the_cache(tiny_vhus_data, tmp_path, monkeypatch):
    out = tmp_path / "vhus" / "model.pt"
    calls = []

    def killed_in_the_second_epoch(*args, **kwargs):
        calls.append(1)
        if len(calls) == 2:  # epoch 1's best is known by now: the old code had written it to `out`
            raise KeyboardInterrupt
        return real_evaluate(*args, **kwargs)

    real_evaluate = vhus_train.evaluate
    monkeypatch.setattr(vhus_train, "evaluate", killed_in_the_second_epoch)
    settings = vhus_train.TrainSettings(epochs=5, threads=1)
    with pytest.raises(KeyboardInterrupt):
        vhus_train.train(tiny_vhus_data, out, settings, config_overrides=TINY_VHUS)
    assert not out.parent.exists() or not list(out.parent.iterdir())  # no model, no temporary file

    monkeypatch.setattr(vhus_train, "evaluate", real_evaluate)
    _, summary = vhus_train.train(
        tiny_vhus_data, out, settings.__class__(epochs=2), config_overrides=TINY_VHUS
    )
    model, extra = vhus_cache.load_checkpoint(out)  # written once, at the end, complete
    assert extra["test"] == summary["test"] and extra["epoch"] == summary["epoch"]
    assert vhus_cache.unusable(out) is None


def legacy_best_so_far(path: Path, model: VHUS) -> None:
    """What the old training wrote after each improving epoch: no digest, no final test scores."""
    path.parent.mkdir(parents=True, exist_ok=True)
    torch.save(
        {
            "format": vhus_cache.CHECKPOINT_FORMAT,
            "config": model.config.to_dict(),
            "state_dict": model.state_dict(),
            "epoch": 1,
            "split": "val",
            "held_out": {"act_f1": 0.1},
        },
        path,
    )


def damage(path: Path, how: str, marker: Path) -> None:
    raw = path.read_bytes()
    if how == "truncated":
        path.write_bytes(raw[: len(raw) // 2])
    elif how == "not a checkpoint":
        path.write_bytes(b"\x00garbage" * 100)
    elif how == "weights flipped":  # the zip still loads: only the digest of the weights tells
        pattern = torch.full((1,), 0.123456, dtype=torch.float32).numpy().tobytes()
        assert pattern in raw
        path.write_bytes(raw.replace(pattern, torch.full((1,), 9.0).numpy().tobytes(), 1))
    elif how == "hostile pickle":
        torch.save({"format": 1, "config": RunsCommand(f"touch {marker}")}, path)
    elif how == "cut short by the old code":
        pass  # written as such by the caller


@pytest.mark.parametrize(
    "how", ["truncated", "not a checkpoint", "weights flipped", "hostile pickle", "cut short by the old code"]
)
def test_an_unusable_cached_vhus_is_moved_aside_and_trained_again(mwdata, tmp_path, monkeypatch, caplog, how):
    monkeypatch.setenv(vhus_cache.CACHE_ENV_VAR, str(tmp_path / "cache"))
    vocabs = Vocabs.from_data(mwdata)
    path = vhus_cache.model_path(mwdata)
    model = tiny_model(vocabs)
    with torch.no_grad():
        next(iter(model.parameters())).view(-1)[0] = 0.123456
    if how == "cut short by the old code":
        legacy_best_so_far(path, model)
    else:
        vhus_cache.save_checkpoint(path, model, {"split": "val", "test": {"act_f1": 0.5}})
    marker = tmp_path / "pwned"
    damage(path, how, marker)
    if how == "cut short by the old code":  # it loads: only its missing final scores and digest tell
        assert "cut short" in vhus_cache.unusable(path)
    else:  # given as an explicit path it is refused in one line (was: torch's traceback, or silent use)
        with pytest.raises(vhus_cache.CacheError) as refused:
            vhus_cache.load_checkpoint(path)
        assert str(path) in str(refused.value) and "\n" not in str(refused.value)
        assert "weights_only" not in str(refused.value)

    trained = []

    def fake_train(data, out, settings, log_dir=None):
        trained.append(out)
        vhus_cache.save_checkpoint(out, tiny_model(vocabs), {"split": "val", "test": {"act_f1": 0.5}})

    monkeypatch.setattr(vhus_train, "train", fake_train)
    with caplog.at_level(logging.WARNING):
        user = VHUSUser.from_data(mwdata)  # was: a traceback, or the damaged model used silently
    assert trained == [path] and user.model is not None
    assert path.with_name("model.pt.corrupt").is_file() and "unusable" in caplog.text
    VHUSUser.from_data(mwdata)
    assert trained == [path]  # the rebuilt model is used from then on
    assert not marker.exists()


# -- 2. locks: one run per folder, one attempt per trial folder, one driver per sweep ----------------------------


@pytest.mark.slow
def test_a_second_training_on_a_run_folder_is_refused_and_a_dead_holder_frees_it(tmp_path):
    out = tmp_path / "run"
    common = ["--algo", "ppo", "--out", str(out), "--steps-per-epoch", "16", "--num-envs", "2"]
    common += ["--set", "mle_epochs=1", "--set", "eval_every=1000", "--set", "eval_dialogues=2"]
    first = subprocess.Popen(
        [sys.executable, "-m", "vrb.train", *common, "--epochs", "2000", "--seed", "0"],
        cwd=REPO_ROOT,
        env=ENV,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    try:
        lock = out / vrb_train.RUN_LOCK
        wait_for(lambda: lock.is_file() and lock.read_text().startswith("pid"), 120, "the first run's lock")
        wait_for(lambda: (out / "config.json").is_file(), 120, "the first run's config.json")
        second = subprocess.run(
            [sys.executable, "-m", "vrb.train", *common, "--epochs", "2000", "--seed", "1"],
            cwd=REPO_ROOT,
            env=ENV,
            capture_output=True,
            text=True,
            timeout=120,
        )
        assert second.returncode == 2  # was: both ran to exit 0 and left one folder of two runs
        one_line_error(second.stderr, out, f"pid {first.pid}")
        assert json.loads((out / "config.json").read_text())["seed"] == 0
        assert len(list(out.glob("events.out.tfevents.*"))) <= 1  # the refused run wrote nothing
    finally:
        first.send_signal(signal.SIGKILL)
        first.wait()
    with hold_lock(lock):  # the kernel released the killed run's lock: no stale lock to clear
        assert lock.read_text().startswith(f"pid {os.getpid()} ")


@pytest.mark.slow
def test_a_trial_attempt_waits_while_an_earlier_attempt_holds_its_folder(tmp_path, caplog):
    out = tmp_path / "trial"
    out.mkdir()
    orphan = holding(out / sweep_trial.TRIAL_LOCK, 1.5)
    started = time.monotonic()
    with caplog.at_level(logging.WARNING, logger="experiments.sweep"), sweep_trial.hold_trial(out):
        waited = time.monotonic() - started
    orphan.wait()
    assert waited > 0.8 and f"in use by pid {orphan.pid}" in caplog.text
    assert sweep_trial.TRIAL_LOCK == vrb_train.RUN_LOCK  # the run inside the attempt takes the same lock


@pytest.mark.slow
def test_a_killed_driver_takes_its_trial_children_with_it(tmp_path):
    spec = tmp_path / "long.yaml"
    spec.write_text(
        "name: long\nbase: {epochs: 2000, steps_per_epoch: 16, num_envs: 2, mle_epochs: 1, eval_every: 1000,"
        " eval_dialogues: 2}\ngrid: [{algo: [ppo]}]\nevaluation: {dialogues: 2}\ntrials: {max_retries: 0}\n"
    )
    out = tmp_path / "sweep"
    driver = subprocess.Popen(
        [sys.executable, "-m", "experiments.sweep", str(spec), "--out", str(out), "--engine", "processes"],
        cwd=REPO_ROOT,
        env=ENV,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    try:
        (trial,) = sweep_cli.load_spec(spec).trials()
        attempts = out / "trials" / trial.trial_id / sweep_trial.ATTEMPTS_FILE
        child = wait_for(
            lambda: attempts.is_file() and attempts.read_text().strip(), 120, "the trial's child"
        )
        child_pid = json.loads(child.splitlines()[0])["pid"]
        driver.send_signal(signal.SIGKILL)
        driver.wait()
        wait_for(lambda: dead(child_pid), 20, "the orphaned child to die")  # was: it kept training
    finally:
        driver.kill()
        driver.wait()
    with hold_lock(out / "trials" / trial.trial_id / sweep_trial.TRIAL_LOCK):
        pass  # free at once for the re-run's attempt


def test_a_second_driver_on_one_sweep_folder_is_refused(tmp_path, capsys):
    spec = tmp_path / "one.yaml"
    spec.write_text("name: one\ngrid: [{algo: [ppo]}]\n")
    out = tmp_path / "sweep"
    out.mkdir()
    first = holding(out / sweep_driver.SWEEP_LOCK, 30)
    try:
        code = sweep_cli.main([str(spec), "--out", str(out), "--engine", "processes"])
    finally:
        first.kill()
        first.wait()
    assert code == 2
    one_line_error(capsys.readouterr().err, out, f"pid {first.pid}")
    assert not (out / sweep_driver.COMMANDS_LOG).exists()  # the refused command wrote nothing there


# -- 3. the processes engine keeps every attempt's log ------------------------------------------------------------


@pytest.mark.slow
def test_the_processes_engine_keeps_each_attempts_log_stamped(tmp_path):
    spec_path = tmp_path / "crash.yaml"
    spec_path.write_text(
        "name: crash\nbase: {epochs: 1, steps_per_epoch: 8, num_envs: 2, pretrained_policy: /nonexistent.pt}"
        "\ngrid: [{algo: [ppo]}]\nevaluation: {dialogues: 2}\ntrials: {max_retries: 1}\n"
    )
    spec = sweep_cli.load_spec(spec_path)
    outcome = sweep_driver.run_sweep(spec, tmp_path / "sweep", max_concurrent=1, engine="processes")
    (trial,) = spec.trials()
    assert outcome.failed == [trial.trial_id]
    folder = tmp_path / "sweep" / "trials" / trial.trial_id
    log = (folder / sweep_trial.LOG_FILE).read_text()
    attempts = [json.loads(line) for line in (folder / sweep_trial.ATTEMPTS_FILE).read_text().splitlines()]
    assert len(attempts) == 2
    for number, attempt in enumerate(attempts, 1):  # both attempts' output, each stamped
        assert f"attempt {number}: pid {attempt['pid']}" in log
    assert log.index("attempt 1:") < log.index("attempt 2:")
    assert log.count("checkpoint /nonexistent.pt does not exist") >= 2
