"""Fault injection, weights and what a run writes: a ``pretrained_policy`` of the wrong type or shape
or without a policy, NaN or infinite weights in a checkpoint, a disk that fills up under a checkpoint write, and
TensorBoard's panels across a resume. Each bad file is refused in one line naming it (and the tensor), exit code 2
on a command line; a resumed run keeps every panel's earlier points.
"""

from __future__ import annotations

import errno
from pathlib import Path

import pytest
import torch
from faults_support import TINY_RUN, one_line_error, saved_payload, write_raw_checkpoint

from vrb import checkpoint as vrb_checkpoint
from vrb import train as vrb_train
from vrb.algorithms import make_config
from vrb.checkpoint import CheckpointError, load_checkpoint, save_checkpoint
from vrb.evaluate import main as evaluate_main
from vrb.policy import MultiLabelPolicy

pytestmark = pytest.mark.faults


def policy_weights() -> dict[str, torch.Tensor]:
    return MultiLabelPolicy(hidden_sizes=(100, 100)).state_dict()


def with_policy(tmp_path: Path, policy, name: str = "start.pt") -> Path:
    path = tmp_path / name
    state = {} if policy is None else {"policy": policy}
    save_checkpoint(path, config=make_config(algo="ppo"), epoch=0, state=state)
    return path


WRONG_POLICIES = {
    "no policy entry": None,
    "not a mapping": [1, 2, 3],
    "text for a tensor": policy_weights() | {"net.0.weight": "abc"},
    "integers for floats": policy_weights() | {"net.0.weight": torch.zeros(100, 340, dtype=torch.int64)},
    "another shape": policy_weights() | {"net.0.weight": torch.zeros(3, 3)},
    "a missing tensor": {k: v for k, v in policy_weights().items() if k != "net.0.bias"},
    "an unexpected tensor": policy_weights() | {"extra": torch.zeros(1)},
}


@pytest.mark.parametrize("policy", WRONG_POLICIES.values(), ids=WRONG_POLICIES)
def test_a_pretrained_policy_that_does_not_fit_is_one_line_and_exit_2(tmp_path, capsys, policy):
    path = with_policy(tmp_path, policy)
    out = tmp_path / "run"
    argv = ["--algo", "ppo", "--out", str(out), "--set", f"pretrained_policy={path}", *TINY_RUN]
    assert vrb_train.main(argv) == 2  # was: KeyError / RuntimeError / AttributeError tracebacks
    one_line_error(capsys.readouterr().err, path, "policy")
    assert not out.exists()


@pytest.mark.slow
def test_a_pretrained_policy_that_fits_starts_the_run(tmp_path):
    path = with_policy(tmp_path, policy_weights())
    out = tmp_path / "run"
    argv = ["--algo", "ppo", "--out", str(out), "--set", f"pretrained_policy={path}", *TINY_RUN]
    assert vrb_train.main([*argv, "--set", "eval_dialogues=2"]) == 0
    started = load_checkpoint(out / "best.pt")  # the start policy's validation, epoch -1
    assert started.epoch == -1 and started.state["record"]["pretrained_policy"] == str(path)


@pytest.mark.parametrize("bad", [float("nan"), float("inf"), float("-inf")])
def test_non_finite_weights_in_a_checkpoint_are_refused_naming_the_tensor(tmp_path, capsys, bad):
    weights = policy_weights()
    weights["net.2.weight"][3, 4] = bad
    path = with_policy(tmp_path, weights, "best.pt")
    with pytest.raises(CheckpointError, match=r"best\.pt.*policy.*net\.2\.weight") as refused:
        load_checkpoint(path)  # was: loaded, and a policy of NaNs evaluated or trained on
    assert "\n" not in str(refused.value)
    assert evaluate_main(["--checkpoint", str(path), "--dialogues", "2"]) == 2
    one_line_error(capsys.readouterr().err, path, "net.2.weight")


def test_a_non_finite_tensor_deep_in_the_state_is_named(tmp_path):
    path = tmp_path / "last.pt"
    state = {"optimiser": {"state": {0: {"exp_avg": torch.tensor([1.0, float("nan")])}}}}
    write_raw_checkpoint(path, saved_payload(tmp_path) | {"state": state})
    with pytest.raises(CheckpointError, match=r"last\.pt.*optimiser.*exp_avg"):
        load_checkpoint(path)
    ints = {"counts": torch.tensor([1, 2]), "rng": torch.ByteTensor([0, 255])}  # no NaN there: accepted
    write_raw_checkpoint(path, saved_payload(tmp_path) | {"state": ints})
    assert load_checkpoint(path).state["counts"].tolist() == [1, 2]


def test_a_full_disk_under_the_checkpoint_write_is_one_line_and_exit_2(tmp_path, capsys, monkeypatch):
    def no_space(path, data):
        raise OSError(errno.ENOSPC, "No space left on device")  # as a write() raises it: no file name

    monkeypatch.setattr(vrb_checkpoint, "atomic_write_bytes", no_space)
    out = tmp_path / "run"
    argv = ["--algo", "ppo", "--out", str(out), *TINY_RUN, "--set", "eval_dialogues=2"]
    assert vrb_train.main(argv) == 2  # was: OSError: [Errno 28], a traceback
    line = one_line_error(capsys.readouterr().err, "No space left on device", ".pt")
    assert str(out) in line


def scalars(run: Path) -> dict[str, dict[int, float]]:
    """Every scalar panel of a run folder as TensorBoard reads it (every event folder below it, purges applied)."""
    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

    found: dict[str, dict[int, float]] = {}
    for folder in sorted({p.parent for p in run.rglob("events.out.tfevents.*")}):
        events = EventAccumulator(str(folder), size_guidance={"scalars": 0})
        events.Reload()
        for tag in events.Tags()["scalars"]:
            found.setdefault(tag, {}).update({e.step: e.value for e in events.Scalars(tag)})
    return found


@pytest.mark.slow
def test_a_resumed_run_keeps_every_panels_earlier_points(tmp_path):
    from vrb.logger import RunLogger

    out = tmp_path / "run"
    argv = ["--algo", "ppo", "--out", str(out), "--steps-per-epoch", "16", "--num-envs", "2"]
    argv += ["--set", "mle_epochs=1", "--set", "eval_every=1", "--set", "eval_dialogues=2"]
    assert vrb_train.main([*argv, "--epochs", "2"]) == 0
    orphan = RunLogger(out)  # what a run killed after epoch 3's validation, before its last.pt, left
    orphan.validation({"paper_success": 9.0}, 3, 48)
    orphan.scalars("ppo", {"orphan": 9.0}, 3)
    orphan.close()
    assert vrb_train.main([*argv, "--epochs", "4", "--resume"]) == 0
    panels = scalars(out)
    assert sorted(panels["eval/paper_success"]) == [0, 1, 2, 3, 4]
    # was: [0, 48, 64]: the purge at epoch 3 took every earlier point of the environment-steps axis
    assert sorted(panels["eval_by_env_steps/paper_success"]) == [0, 16, 32, 48, 64]
    assert 9.0 not in panels["eval_by_env_steps/paper_success"].values()  # the killed run's point is gone
    assert 9.0 not in panels["eval/paper_success"].values() and not panels.get("ppo/orphan")
