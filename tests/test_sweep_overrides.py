"""The sweep's command-line overrides (--set, --epochs, --seeds): parsing, what they do to the grid and the trial
ids, their errors, and where the sweep records them. No training: the driver is replaced where one would run."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from experiments import sweep
from experiments.store import ResultStore
from experiments.sweep import cli as sweep_cli
from experiments.sweep.overrides import apply_overrides, describe, parse_sets
from tests.faults_support import one_line_error
from vrb import train

CONFIGS = Path(__file__).resolve().parents[1] / "experiments" / "configs"
SMOKE = CONFIGS / "smoke.yaml"


def _ids(spec: sweep.SweepSpec) -> list[str]:
    return [t.trial_id for t in spec.trials()]


def test_set_values_are_read_as_vrb_train_reads_them():
    items = ["epochs=40", "ic=0.3", "decoder=sample", "flush_denormal=false", "data_dir=/data/mw=1"]
    values = parse_sets(items)
    assert values == {
        "epochs": 40,
        "ic": 0.3,
        "decoder": "sample",
        "flush_denormal": False,
        "data_dir": "/data/mw=1",  # split at the first '='
    }
    assert values == train.config_values(train.build_parser().parse_args([f"--set={i}" for i in items]))
    assert parse_sets([], epochs=7) == {"epochs": 7}
    assert parse_sets(["epochs=9"], epochs=7) == {"epochs": 9}  # --set wins over the flag, as in vrb.train
    assert parse_sets([]) == {}


def test_set_applies_to_every_trial_and_an_axis_of_its_name_becomes_that_value():
    spec = sweep.load_spec(SMOKE)
    changed = apply_overrides(spec, parse_sets(["eval_dialogues=12", "user_noise=0.2"]))
    assert {(t.config.eval_dialogues, t.config.user_noise) for t in changed.trials()} == {(12, 0.2)}
    assert [t.axes["algo"] for t in changed.trials()] == ["vrb", "ppo"]
    assert changed.overrides == {"set": {"eval_dialogues": 12, "user_noise": 0.2}}
    assert describe(changed.overrides) == "--set eval_dialogues=12 --set user_noise=0.2"
    assert spec.overrides == {} and len(spec.trials()) == 4  # the loaded spec is left as it was


def test_seeds_replace_the_seed_axis_of_every_block(tmp_path):
    path = tmp_path / "two_blocks.yaml"
    path.write_text(
        "name: two\nbase: {epochs: 3}\n"
        "grid: [{algo: [vrb], seed: [0, 1, 2, 3, 4]}, {algo: [ppo], user_noise: [0.0, 0.1]}]\n"
    )
    spec = apply_overrides(sweep.load_spec(path), {}, [7, 0, 7])
    seeds = [(t.config.algo, t.config.seed) for t in spec.trials()]
    assert seeds == [("vrb", 7), ("vrb", 0), ("ppo", 7), ("ppo", 0), ("ppo", 7), ("ppo", 0)]
    assert spec.overrides == {"seeds": [7, 0]} and describe(spec.overrides) == "--seeds 7 0"
    # seed 0 of the vrb block is the same trial as without --seeds: --seeds picks seeds, it changes no setting
    plain = {t.trial_id for t in sweep.load_spec(path).trials()}
    assert {t.trial_id for t in spec.trials() if t.config.algo == "vrb"} & plain == {
        t.trial_id for t in spec.trials() if t.config.algo == "vrb" and t.config.seed == 0
    }


def test_overrides_that_change_a_setting_change_the_trial_ids():
    spec = sweep.load_spec(SMOKE)
    plain = _ids(spec)
    assert not set(plain) & set(_ids(apply_overrides(spec, parse_sets([], epochs=5))))
    assert not set(plain) & set(_ids(apply_overrides(spec, parse_sets(["gamma=0.95"]))))
    assert _ids(apply_overrides(spec, parse_sets([], epochs=4))) == plain  # smoke.yaml's own epochs: 4
    # settings the trials have anyway (defaults, the workers trials.cpus gives) are no new trials
    assert _ids(apply_overrides(spec, parse_sets(["torch_threads=1", "workers=1", "gamma=0.99"]))) == plain
    # a subset of the grid keeps its ids, also when the value is written as an integer
    assert _ids(apply_overrides(spec, parse_sets(["user_noise=0"]))) == [plain[0], plain[2]]
    assert _ids(apply_overrides(spec, {}, [0])) == plain


@pytest.mark.parametrize(
    "argv, names",
    [
        (["--set", "epoch=3"], ["--set epoch=3", "unknown config field 'epoch'", "did you mean 'epochs'"]),
        (["--set", "colour=red"], ["unknown config field 'colour'", "--show-config"]),
        (["--epochs", "0"], ["'epochs' = 0", "expected an integer >= 1", "--set epochs=0"]),
        (["--set", "ic=0.3"], ["unknown config field 'ic' for algo 'ppo'", "--set ic=0.3"]),
        (["--set", "epochs"], ["--set 'epochs': expected FIELD=VALUE"]),
        (["--set", "out_dir=x"], ["--set out_dir=x", "--out"]),
        (["--set", "seed=1", "--seeds", "2"], ["--seeds", "give the seeds once"]),
        (["--seeds", "-1"], ["'seed' = -1"]),
    ],
)
def test_a_bad_override_is_one_line_and_exit_2(tmp_path, capsys, argv, names):
    assert sweep_cli.main([str(SMOKE), "--out", str(tmp_path / "sweep"), "--dry-run", *argv]) == 2
    one_line_error(capsys.readouterr().err, *names)
    assert not (tmp_path / "sweep").exists()


def test_the_default_folder_is_runs_name_and_the_driver_gets_the_overrides(tmp_path, monkeypatch, capsys):
    seen: dict[str, Any] = {}

    def fake_run_sweep(spec: sweep.SweepSpec, sweep_dir: Path, **kwargs: Any) -> sweep.SweepOutcome:
        seen.update(spec=spec, sweep_dir=sweep_dir, command=kwargs["command"])
        return sweep.SweepOutcome(total=len(spec.trials()), skipped=[], ran=[], failed=[])

    monkeypatch.setattr(sweep_cli, "run_sweep", fake_run_sweep)
    monkeypatch.chdir(tmp_path)
    argv = [str(SMOKE), "--epochs", "2", "--seeds", "0", "1", "--set", "eval_dialogues=5"]
    assert sweep_cli.main(argv) == 0
    assert seen["sweep_dir"] == Path("runs/smoke")
    assert seen["spec"].overrides == {"set": {"eval_dialogues": 5, "epochs": 2}, "seeds": [0, 1]}
    assert "--epochs 2 --seeds 0 1 --set eval_dialogues=5" in seen["command"]  # commands.log's line
    assert "sweep smoke: 8 trials" in capsys.readouterr().out


def test_store_rows_name_the_overrides(tmp_path):
    spec = apply_overrides(sweep.load_spec(SMOKE), parse_sets([], epochs=2), [3])
    trial = spec.trials()[0]
    store = ResultStore(tmp_path)
    sweep.Recorder(store, [trial], spec.evaluation, spec.overrides)(trial, "finished", 1, {}, "")
    sweep.Recorder(store, [trial], spec.evaluation)(trial, "failed", 1, {}, "boom")
    finished, failed = store.records()
    assert finished.config["overrides"] == {"set": {"epochs": 2}, "seeds": [3]}
    assert finished.config["epochs"] == 2 and finished.config["seed"] == 3
    assert "overrides" not in failed.config  # a sweep without any keeps its rows as they were


def test_trials_runs_the_share_whose_ids_match_in_config_order(tmp_path, monkeypatch, capsys):
    plain = _ids(sweep.load_spec(SMOKE))  # vrb p0, vrb p0.2, ppo p0, ppo p0.2
    argv = [str(SMOKE), "--out", str(tmp_path / "sweep"), "--dry-run", "--trials", "ppo-*", plain[0]]
    assert sweep_cli.main(argv) == 0
    listed = [line.split()[1] for line in capsys.readouterr().out.splitlines()]
    assert listed == [plain[0], plain[2], plain[3]]  # the config's order, not the patterns'
    seen: dict[str, Any] = {}

    def fake_run_sweep(spec: sweep.SweepSpec, sweep_dir: Path, **kwargs: Any) -> sweep.SweepOutcome:
        seen.update(kwargs)
        return sweep.SweepOutcome(
            total=len(kwargs["trial_ids"] or spec.trials()), skipped=[], ran=[], failed=[]
        )

    monkeypatch.setattr(sweep_cli, "run_sweep", fake_run_sweep)
    assert sweep_cli.main(argv[:3] + ["--trials", "*-noise0.2-*"]) == 0
    assert seen["trial_ids"] == [plain[1], plain[3]] and "--trials '*-noise0.2-*'" in seen["command"]
    assert sweep_cli.main(argv[:3]) == 0 and seen["trial_ids"] is None  # no patterns: every trial


def test_a_trials_pattern_that_matches_nothing_is_one_line_and_exit_2(tmp_path, capsys):
    argv = [str(SMOKE), "--out", str(tmp_path / "sweep"), "--trials", "ppo-*", "gdpl-*"]
    assert sweep_cli.main(argv) == 2
    one_line_error(capsys.readouterr().err, "--trials 'gdpl-*'", "none of the 4 trial ids", "--dry-run")
    assert not (tmp_path / "sweep").exists()


def test_the_driver_runs_only_the_named_trials_and_skips_finished_ones_among_them(tmp_path, monkeypatch):
    from experiments.sweep import driver

    spec = sweep.load_spec(SMOKE)
    plain = _ids(spec)
    ran: list[str] = []
    monkeypatch.setattr(driver, "warm_caches", lambda trials: None)
    monkeypatch.setattr(
        driver, "run_in_processes", lambda s, d, pending, *rest: ran.extend(t.trial_id for t in pending)
    )
    store = ResultStore(tmp_path)
    sweep.Recorder(store, spec.trials(), spec.evaluation)(spec.trials()[3], "finished", 1, {}, "")
    outcome = sweep.run_sweep(spec, tmp_path, engine="processes", trial_ids=[plain[1], plain[3]])
    assert ran == [plain[1]] and outcome.skipped == [plain[3]] and outcome.total == 2
