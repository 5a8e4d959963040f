"""Every path is device-correct: a run with ``device="cuda"`` places each tensor where it must go, and saves
checkpoints that load on a machine without CUDA. Checked on a CPU-only machine with ``fake_cuda.FakeCuda``.

Why this catches what a GPU would. A real CUDA run died right after behaviour cloning (``mat1 is on cpu``:
``policy.greedy(torch.as_tensor(test.states))``, a batch made without a device for a policy moved to the GPU).
On a CPU machine that line cannot fail: everything is on the CPU. ``FakeCuda`` keeps, beside every tensor, the
device it would be on under torch's own rules (``device=``, ``.to``, ``Module.to``, outputs following inputs),
and records every operation a GPU would refuse: GPU and CPU tensors mixed, a CPU generator drawing for a GPU
tensor, ``.numpy()`` of a GPU tensor, and here a checkpoint holding a GPU tensor. Before the fix this test listed
``clone_behaviour`` of ``vrb/learners/mle.py`` (and ``vrb/acting.py`` validation, the estimators' networks left on
the CPU, ACER's networks never moved, and checkpoints of GPU tensors); after it, nothing. A tiny run of each
algorithm that accepts CUDA covers cloning (fresh and from the clone cache), sampling, the estimators and their
pretraining, PPO, the diagnostics, validation, checkpoints and a resume (a CPU checkpoint into a GPU learner).
``test_the_guard_*`` prove the harness sees each kind of mistake, so an empty list means something.
GP-MBCM refuses CUDA in its config (numpy committee; ``tests/test_config.py``), so it has no run here.
"""

from __future__ import annotations

import pytest
import torch
from fake_cuda import fake_cuda
from torch import nn

from envs.dialogue_env import DialogueEnv
from vrb import algorithms, clone_cache
from vrb.acting import run_dialogues
from vrb.checkpoint import load_checkpoint
from vrb.learners.mle import act_scores
from vrb.policy import MultiLabelPolicy
from vrb.train import run

TINY = {"seed": 3, "epochs": 2, "steps_per_epoch": 16, "num_envs": 2, "eval_every": 1, "eval_dialogues": 4}
OWN = {
    "mle": {"mle_epochs": 2},
    "ppo": {"mle_epochs": 2, "rollout_decoder": "sample"},  # a CPU generator sampling GPU probabilities
    "gdpl": {"mle_epochs": 2, "estimator_pretrain_epochs": 1},
    "vrb": {
        "mle_epochs": 2,
        "estimator_negatives": "both",
        "estimator_replay_epochs": 1,  # a resume loads the replay back onto the device
        "estimator_logit": "airl",
        "decoder": "sample",  # validation samples too
    },
    "aldm": {"mle_epochs": 2, "aldm_pretrain_epochs": 1},
    "acer": {"mle_epochs": 2, "env_reward": "evaluator"},
}


@pytest.fixture(scope="module")
def clone_dir(tmp_path_factory):
    """One clone cache for the module: the first run clones on the "GPU", the later ones start from its entry."""
    return tmp_path_factory.mktemp("clone")


@pytest.mark.parametrize("algo", list(OWN))
def test_a_cuda_run_puts_every_tensor_on_its_device(algo, tmp_path, clone_dir, monkeypatch):
    monkeypatch.setattr(clone_cache, "default_cache_dir", lambda: clone_dir)
    cfg = algorithms.make_config(algo=algo, device="cuda", **TINY, **OWN[algo])
    out = tmp_path / algo
    with fake_cuda() as fake:
        if algo == "mle":  # no epochs, nothing to resume
            run(cfg, out)
        else:
            run(cfg.replace(epochs=1), out)
            run(cfg, out, resume=True)
    assert fake.violations == {}
    # CUDA is gone again: the checkpoints load and act here
    assert not torch.cuda.is_available()
    checkpoint = load_checkpoint(out / "best.pt")
    agent = algorithms.get(algo).load_agent(checkpoint, algorithms.config_of(checkpoint), None, 0)
    assert run_dialogues(agent, DialogueEnv(), [7]).summary["dialogues"] == 1


def test_the_guard_sees_a_cpu_batch_meet_a_gpu_policy():
    """The line that crashed on CUDA, as it was: its mistake is recorded, the corrected line passes."""
    states, actions = torch.zeros(5, 340).numpy(), torch.zeros(5, 209).numpy()
    with fake_cuda() as fake:
        policy = MultiLabelPolicy().to("cuda")
        with torch.no_grad():
            act_scores(policy.greedy(torch.as_tensor(states)), torch.as_tensor(actions))
    assert any("greedy" in where and "linear" in what for where, what in fake.violations.items()), (
        fake.violations
    )
    with fake_cuda() as fake:
        policy = MultiLabelPolicy().to("cuda")
        device = next(policy.parameters()).device
        assert device == torch.device("cuda", 0)
        with torch.no_grad():
            predicted = policy.greedy(torch.as_tensor(states, device=device))
            act_scores(predicted, torch.as_tensor(actions, device=device))
        predicted.cpu().numpy()
    assert fake.violations == {}


def test_the_guard_sees_generators_numpy_and_checkpoints_on_the_wrong_device(tmp_path):
    with fake_cuda() as fake:
        probs = torch.full((3,), 0.5, device="cuda")
        torch.bernoulli(probs, generator=torch.Generator())
        torch.randperm(4, generator=torch.Generator(), device="cuda")
        probs.numpy()
        torch.save({"weights": nn.Linear(2, 2).to("cuda").state_dict()}, tmp_path / "x.pt")
        torch.save({"weights": nn.Linear(2, 2).to("cuda").cpu().state_dict()}, tmp_path / "y.pt")
    found = list(fake.violations.values())
    assert sum("CPU generator" in what for what in found) == 2
    assert sum("numpy" in what for what in found) == 1
    assert sorted(where for where in fake.violations if where.startswith("torch.save")) == [
        "torch.save .weights.bias",
        "torch.save .weights.weight",
    ]
