"""Run configs (shared fields + the algorithm's own) and the algorithm registry."""

import dataclasses
import subprocess
import sys

import pytest

from vrb import algorithms
from vrb.algorithms import Algorithm, make_config
from vrb.config import TrainConfig, fields_help
from vrb.errors import ConfigError
from vrb.learners import GDPLOptions, MLEOptions, VRBOptions


def test_round_trip_flat_fields_and_hparams():
    config = make_config(algo="gdpl", simulator="vhus", policy_hidden=[64, 32], num_envs=4, data_dir="/tmp/x")
    assert isinstance(config.options, GDPLOptions)
    as_dict = config.to_dict()
    assert as_dict["policy_hidden"] == [64, 32] and as_dict["data_dir"] == "/tmp/x"
    assert make_config(as_dict) == config
    hparams = config.hparams()
    assert (
        hparams["policy_hidden"] == "64x32"
        and hparams["algo"] == "gdpl"
        and hparams["pretrained_policy"] == ""
    )
    assert all(isinstance(v, int | float | str | bool) for v in hparams.values())
    assert config.steps_per_env == 256


def test_a_config_holds_only_its_algorithms_fields():
    ppo, vrb, acer = (set(make_config(algo=a).to_dict()) for a in ("ppo", "vrb", "acer"))
    assert "ic" in vrb and "ic" not in ppo and "estimator_lr" not in ppo
    assert not any(name.startswith(("acer_", "gp_", "aldm_")) for name in ppo | vrb)
    assert "acer_replay_size" in acer and "bc_coef" not in acer
    with pytest.raises(ConfigError, match="unknown config field 'ic' for algo 'ppo'"):
        make_config(algo="ppo", ic=0.3)


def test_replace_changes_shared_and_own_fields_but_not_the_algorithm():
    config = make_config(algo="vrb")
    changed = config.replace(seed=4, ic=0.2)
    assert (changed.seed, changed.options.ic, changed.options.alpha_phi) == (4, 0.2, config.options.alpha_phi)
    with pytest.raises(ConfigError, match="'algo'"):
        config.replace(algo="ppo")
    with pytest.raises(ConfigError, match="'acer_q_lr'"):
        config.replace(acer_q_lr=1.0)


@pytest.mark.parametrize(
    ("fields", "message"),
    [
        ({"algo": "a2c"}, "'algo' = 'a2c'"),
        ({"gamma": 1.5}, "'gamma'"),
        ({"algo": "ppo", "minibatch_size": 0}, "'minibatch_size'"),
        ({"algo": "ppo", "policy_lr": "fast"}, "'policy_lr'"),
        ({"policy_hidden": [100, -1]}, "'policy_hidden'"),
        ({"steps_per_epoch": 1001}, "'steps_per_epoch'.*multiple of num_envs"),
        ({"device": "tpu"}, "'device'"),
        ({"seed": True}, "'seed'"),
        ({"ic": float("inf")}, "'ic'"),
        ({"eval_dialogues": 0}, "'eval_dialogues'"),
        ({"algo": "ppo", "env_reward": "none"}, "ppo learns from the env's reward"),
        ({"algo": "gp_mbcm", "device": "cuda"}, "gp_mbcm runs on"),
        (
            {"algo": "acer", "acer_replay_size": 100},
            "'acer_replay_size' = 100: expected at least steps_per_epoch",
        ),
        ({"learning_rate": 1e-3}, "unknown config field 'learning_rate'"),
    ],
)
def test_validation_names_the_bad_field_in_one_line(fields, message):
    with pytest.raises(ConfigError, match=message) as info:
        make_config(fields)
    assert "\n" not in str(info.value)


def test_rules_and_meanings_stand_beside_every_field():
    rows = fields_help(VRBOptions)
    names = [name for name, _, _ in rows]
    assert names[: len(TrainConfig.field_names())] == list(TrainConfig.field_names())
    assert {"ic", "alpha_phi", "bc_coef", "decoder"} <= set(names) and len(names) == len(set(names))
    assert all(meaning for _, _, meaning in rows)
    for cls in (TrainConfig, MLEOptions, VRBOptions):
        for f in dataclasses.fields(cls):
            assert f.name == "options" or {"rule", "meaning"} <= set(f.metadata), f.name


def test_registry_holds_vrbs_own_and_the_declared_baselines():
    registered = algorithms.registered()
    assert {"mle", "ppo", "gdpl", "vrb", "acer", "aldm", "gp_mbcm"} <= set(registered)
    assert registered["vrb"].learns_reward and not registered["ppo"].learns_reward
    with pytest.raises(ValueError, match="registered already"):
        algorithms.register(dataclasses.replace(registered["ppo"], summary="another"))


def test_adding_an_algorithm_is_one_registration(tmp_path):
    """A new learner registered by name trains through the same run loop."""
    from vrb.learners.mle import ClonedPolicy

    algorithm = Algorithm("cloned_again", "behaviour cloning, registered by a test", MLEOptions, ClonedPolicy)
    algorithms.register(algorithm)
    try:
        assert make_config(algo="cloned_again").options == MLEOptions()
    finally:
        algorithms._REGISTRY.pop("cloned_again")


def test_vrb_and_envs_never_name_baselines_or_experiments():
    code = (
        "import sys, vrb.train, vrb.evaluate, vrb.algorithms, envs.dialogue_env; "
        "print(sorted(m for m in sys.modules if m.split('.')[0] in ('baselines', 'experiments')))"
    )
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert done.stdout.strip() == "[]"  # nothing imported until an entry point is looked up


@pytest.mark.slow
def test_help_lists_the_registered_algorithms():
    done = subprocess.run([sys.executable, "-m", "vrb.train", "--help"], capture_output=True, text=True)
    assert done.returncode == 0
    for name in ("vrb", "gdpl", "ppo", "mle", "acer", "aldm", "gp_mbcm"):
        assert f"  {name} " in done.stdout


def test_best_follows_the_declared_metric_and_patience_stops_the_run(tmp_path, monkeypatch):
    """best.pt follows select_metric; after `patience` validations without a new best the run stops."""
    from vrb import loop as loop_module
    from vrb.loop import RunContext, RunTracker

    scores = iter(
        [{"paper_success": 0.5, "success": 0.9}, {"paper_success": 0.6, "success": 0.1}]
        + [{"paper_success": 0.55, "success": 0.95}] * 5
    )
    monkeypatch.setattr(loop_module, "validate", lambda agent, envs, dialogues: next(scores))
    saved = []
    monkeypatch.setattr(RunTracker, "save", lambda self, name, epoch: saved.append((name, epoch)))
    cfg = make_config(algo="ppo", epochs=10, eval_every=1, patience=2)
    ctx = RunContext(
        cfg,
        tmp_path,
        None,
        None,
        None,
        None,
        tb=type("TB", (), {"scalars": lambda *a: None, "validation": lambda *a: None})(),
    )
    tracker = RunTracker(ctx, agent=None, learner_state=dict, checksums={}, best={"epoch": 0}, record={})
    tracker.start()
    stopped_after = None
    for epoch in tracker.epochs(0):
        tracker.end_epoch(epoch, 0.0, {})
        if tracker.stop:
            stopped_after = epoch
            break
    assert tracker.best["epoch"] == 1 and tracker.best["paper_success"] == 0.6  # not the higher ConvLab-2 one
    assert ("best.pt", 0) in saved and stopped_after == 2


def test_legal_but_suspicious_settings_are_named():
    from vrb.learners import suspicious_settings

    assert suspicious_settings(make_config(algo="vrb")) == []
    (uneven,) = suspicious_settings(make_config(algo="ppo", steps_per_epoch=1000, minibatch_size=128))
    assert "minibatch_size 128 does not divide steps_per_epoch 1000" in uneven and "104 steps" in uneven
    found = suspicious_settings(
        make_config(algo="vrb", steps_per_epoch=16, num_envs=2, epochs=2, eval_every=5)
    )
    assert [m.split()[0] for m in found] == ["minibatch_size", "estimator_batch_size", "eval_every"]
    assert suspicious_settings(make_config(algo="mle", epochs=1, eval_every=1)) == []
