"""The sweep runner: config expansion, and the smoke sweep on a local Ray with one trial killed mid-run."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from experiments import plots, report, sweep
from experiments.store import ResultStore
from vrb.algorithms import make_config
from vrb.workers import worker_count

REPO_ROOT = Path(__file__).resolve().parents[1]
CONFIGS = REPO_ROOT / "experiments" / "configs"
# A hang guard, not a speed check (speed lives in benchmarks/): the smoke sweep takes about 80 s on an idle
# 2-core machine, several minutes when the machine is busy.
SWEEP_TIMEOUT_S = 900


def test_shipped_configs_expand():
    counts = {
        name: len(sweep.load_spec(CONFIGS / f"{name}.yaml").trials())
        for name in ("smoke", "quick", "paper_table", "robustness", "ablation")
    }
    assert counts == {
        "smoke": 4,
        "quick": 2 * 2 * 2,  # VRB and PPO x 2 seeds x clean and noisy user
        "paper_table": 6 * 2 * 5 + 2 * 2 * 5 + 2 * 5 + 5,  # all; VRB, GDPL pure; the paper's PPO; GP-MBCM
        "robustness": 16 * 5 + 3 * 4 * 5,  # VRB p x I_c; GDPL, PPO and the paper's PPO over p
        "ablation": 2 * (3 + 2) * 5,  # reward x (phi 0, 0.1, 1.0 fixed | Lagrange at 2 I_c) x seeds
    }
    paper = sweep.load_spec(CONFIGS / "paper_table.yaml").trials()
    assert not [t for t in paper if t.config.algo == "gp_mbcm" and t.config.simulator == "vhus"]
    assert {t.config.env_reward for t in paper if t.config.algo == "vrb"} == {"user", "none"}
    robust = sweep.load_spec(CONFIGS / "robustness.yaml").trials()
    assert {(t.config.options.ic, t.config.user_noise) for t in robust if t.config.algo == "vrb"} == {
        (ic, p) for ic in (0.1, 0.2, 0.5, 1.0) for p in (0.0, 0.1, 0.2, 0.3)
    }


def test_trials_sample_with_their_cpus_and_the_rest_config_completes_the_paper_table(tmp_path):
    paper = {t.trial_id: t for t in sweep.load_spec(CONFIGS / "paper_table.yaml").trials()}
    assert {t.config.workers for t in paper.values()} == {1}  # trials.cpus: 1
    rest = sweep.load_spec(CONFIGS / "paper_table_rest.yaml").trials()
    assert rest and all(t.trial_id in paper for t in rest)  # the same trial ids: the same store
    text = (CONFIGS / "smoke.yaml").read_text().replace("cpus: 1", "cpus: 3")
    smoke = _spec(tmp_path, text).trials()
    assert {t.config.workers for t in smoke} == {3}
    assert {worker_count(t.config) for t in smoke} == {2}  # never more than num_envs (2 in smoke.yaml)


def test_trial_ids_follow_the_config(tmp_path):
    text = (CONFIGS / "smoke.yaml").read_text()
    first = [t.trial_id for t in _spec(tmp_path, text).trials()]
    assert first == [t.trial_id for t in _spec(tmp_path, text).trials()]
    assert first[0].startswith("vrb-agenda-s0-noise0.0-")
    changed = [t.trial_id for t in _spec(tmp_path, text.replace("epochs: 4", "epochs: 5")).trials()]
    assert not set(first) & set(changed)  # an edited config never reuses stale results


def test_trial_ids_ignore_defaults_the_file_does_not_name():
    """A new or retuned TrainConfig default must not orphan a sweep's finished trials."""
    axes, evaluation = {"algo": "vrb", "seed": 0}, {"dialogues": 10, "first_seed": 0}
    config = make_config(algo="vrb", epochs=3)
    retuned = config.replace(gamma=0.95)
    explicit = ("epochs", "algo", "seed")
    assert sweep._trial_id(axes, config, explicit, evaluation) == sweep._trial_id(
        axes, retuned, explicit, evaluation
    )
    assert sweep._trial_id(axes, config, explicit, evaluation) != sweep._trial_id(
        axes, config.replace(epochs=4), explicit, evaluation
    )


@pytest.mark.parametrize(
    "text, message",
    [
        ("grid: [{algo: [vrb], colour: [red]}]", "unknown config field 'colour'"),
        ("grid: [{algo: [vrb], user_noise: [1.5]}]", "'user_noise' = 1.5: expected a number in [0, 1]"),
        ("grid: []", "'grid' a non-empty list"),
        ("grid: [{algo: [vrb]}]\nevaluation: {dialogs: 3}", "evaluation.dialogs is unknown"),
        ("grid: [{algo: [vrb]}]\nextra: 1", "unknown key 'extra'"),
    ],
)
def test_bad_configs_are_named(tmp_path, text, message):
    with pytest.raises(sweep.SpecError, match=message.replace("[", r"\[").replace("]", r"\]")):
        _spec(tmp_path, text)


def _spec(tmp_path: Path, text: str) -> sweep.SweepSpec:
    path = tmp_path / "spec.yaml"
    path.write_text(text)
    return sweep.load_spec(path)


# -- the smoke sweep on a local Ray -------------------------------------------------------------------------


def _start(out: Path, log: Path, engine: str) -> subprocess.Popen:
    env = {**os.environ, "RAY_DEDUP_LOGS": "0"}
    with open(log, "w") as f:
        return subprocess.Popen(
            [
                sys.executable,
                "-m",
                "experiments.sweep",
                str(CONFIGS / "smoke.yaml"),
                "--out",
                str(out),
                "--max-concurrent",
                "2",
                "--engine",
                engine,
            ],
            cwd=REPO_ROOT,
            stdout=f,
            stderr=subprocess.STDOUT,
            env=env,
        )


def _wait_for(condition, process: subprocess.Popen, what: str, log: Path, timeout: float = SWEEP_TIMEOUT_S):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        value = condition()
        if value:
            return value
        if process.poll() is not None:
            break
        time.sleep(0.05)
    process.kill()
    pytest.fail(f"gave up waiting for {what}; sweep log tail:\n{log.read_text()[-3000:]}")


def _attempts(trial_dir: Path) -> list[dict]:
    path = trial_dir / sweep.ATTEMPTS_FILE
    return [json.loads(line) for line in path.read_text().splitlines()] if path.is_file() else []


@pytest.mark.slow
@pytest.mark.parametrize("engine", sweep.ENGINES)
def test_smoke_sweep_survives_a_killed_trial_and_reruns_only_it(tmp_path, engine):
    out, log = tmp_path / "sweep", tmp_path / "run1.log"
    trials = sweep.load_spec(CONFIGS / "smoke.yaml").trials()
    victim = out / "trials" / trials[0].trial_id
    started = time.monotonic()
    process = _start(out, log, engine)

    # kill the victim once mid-training (after its first epoch's last.pt), then kill the resumed retry too:
    # with the smoke config's max_retries 1 that spends its retries
    first = _wait_for(
        lambda: (victim / "last.pt").is_file() and _attempts(victim), process, "the first epoch", log
    )
    os.kill(first[0]["pid"], signal.SIGKILL)
    second = _wait_for(lambda: len(_attempts(victim)) == 2 and _attempts(victim), process, "the retry", log)
    assert second[1]["resume"] and second[1]["pid"] != first[0]["pid"]
    os.kill(second[1]["pid"], signal.SIGKILL)
    assert process.wait(timeout=SWEEP_TIMEOUT_S) == 1, log.read_text()[-3000:]
    print(f"smoke sweep ({engine}) with two killed attempts: {time.monotonic() - started:.0f} s")

    store = ResultStore(out)
    rows = store.records()
    assert {(r.trial_id, r.status) for r in rows} == {
        (t.trial_id, "failed" if t is trials[0] else "finished") for t in trials
    }
    failed = store.records("failed")[0]
    assert failed.attempts == 2 and failed.trial_id == trials[0].trial_id
    for record in store.records("finished"):
        assert record.attempts == 1 and 0 <= record.metrics["success"] <= 1
        assert record.metrics["dialogues"] == 20
        assert record.versions["code"]["package"] and len(record.versions["data_checksums"]) > 10
        assert record.versions["engine"] == engine and ("ray" in record.versions) == (engine == "ray")
        assert record.config["user_noise"] == record.axes["user_noise"]
    others = {
        t.trial_id: (out / "trials" / t.trial_id / "evaluation.json").stat().st_mtime_ns for t in trials[1:]
    }

    # the re-run completes the victim only (resuming it from its last.pt), and touches nothing else
    rerun_log = tmp_path / "run2.log"
    process = _start(out, rerun_log, engine)
    assert process.wait(timeout=SWEEP_TIMEOUT_S) == 0, rerun_log.read_text()[-3000:]
    assert "skipped 3 already finished; ran 1; failed 0" in rerun_log.read_text()
    after = ResultStore(out).records()
    assert after[: len(rows)] == rows
    assert [(r.trial_id, r.status) for r in after[len(rows) :]] == [(trials[0].trial_id, "finished")]
    assert [a["resume"] for a in _attempts(victim)] == [False, True, True]
    for trial_id, mtime in others.items():
        assert len(_attempts(out / "trials" / trial_id)) == 1
        assert (out / "trials" / trial_id / "evaluation.json").stat().st_mtime_ns == mtime

    text = report.write_report(out).read_text()
    assert "4 finished trials in 4 cells; 0 failed" in text
    assert {0, trials[0].config.epochs} <= plots.learning_curve(victim, "eval/paper_success").keys()


@pytest.mark.slow
@pytest.mark.parametrize("engine", sweep.ENGINES)
def test_a_crashing_trial_is_retried_then_recorded_failed(tmp_path, engine):
    spec = _spec(
        tmp_path,
        "name: crash\nbase: {epochs: 1, steps_per_epoch: 8, num_envs: 2, pretrained_policy: /nonexistent.pt}"
        "\ngrid: [{algo: [ppo]}]\nevaluation: {dialogues: 2}\ntrials: {max_retries: 1}",
    )
    outcome = sweep.run_sweep(spec, tmp_path / "sweep", max_concurrent=1, engine=engine)
    (trial,) = spec.trials()
    assert outcome.failed == [trial.trial_id]
    (record,) = ResultStore(tmp_path / "sweep").records()
    assert (record.status, record.attempts) == ("failed", 2)
    assert "checkpoint /nonexistent.pt does not exist" in record.error
    assert len(_attempts(tmp_path / "sweep" / "trials" / trial.trial_id)) == 2
