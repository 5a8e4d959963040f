"""Validation and ``run_dialogues``: the side-by-side path (one policy forward pass for every running dialogue)
scores exactly what playing the dialogues one at a time scores, for every decoder and for agents that cannot
act on a batch; a run's final validation reuses the last one; the state probe is unchanged by its speed-up.

Why an "exact" policy: a network's rows are not bit-identical across batch sizes (BLAS sums in another order
for another shape), so a random policy could, very rarely, flip a decision whose logit sits within an ulp of a
threshold and make the comparison flaky. With weights and biases on a coarse binary grid and 0/1 states, every
partial sum is exactly representable, so every summation order gives the same bits; the test checks that
premise before relying on it.
"""

from __future__ import annotations

import numpy as np
import pytest
import torch

from envs.dialogue_env import DialogueEnv
from envs.multiwoz.vector import ACTION_DIM, STATE_DIM
from vrb import loop as loop_module
from vrb.acting import NeuralAgent, RuleAgent, run_dialogues
from vrb.algorithms import make_config
from vrb.diagnostics import PROBE_LR, PROBE_STEPS, probe_auc, roc_auc
from vrb.loop import VALIDATION_WIDTH, RunContext, RunTracker
from vrb.policy import DECODERS, MultiLabelPolicy

SEEDS = range(1_000_000, 1_000_012)  # more dialogues than VALIDATION_WIDTH: slots are refilled


def exact_policy() -> MultiLabelPolicy:
    """A policy whose forward pass gives the same bits for any batch shape (module docstring)."""
    generator = torch.Generator().manual_seed(1)
    policy = MultiLabelPolicy(STATE_DIM, ACTION_DIM)
    with torch.no_grad():
        for layer in (m for m in policy.net if isinstance(m, torch.nn.Linear)):
            grid = torch.randint(-2, 3, layer.weight.shape, generator=generator).float() / 16
            keep = torch.rand(layer.weight.shape, generator=generator) < 0.3
            layer.weight.copy_(grid * keep)
            layer.bias.copy_(torch.randint(-2, 3, layer.bias.shape, generator=generator).float() / 16)
        policy.net[-1].bias.sub_(1.0)  # a few acts a turn, so that dialogues end
    states = (torch.rand(64, STATE_DIM, generator=generator) < 0.05).float()
    with torch.no_grad():
        rows = torch.cat([policy(states[i : i + 1]) for i in range(len(states))])
        assert torch.equal(policy(states), rows)  # the premise: exact whatever the batch shape
    return policy


class OneAtATime:
    """An agent that acts on one dialogue only (no ``act_many``): baselines' agents, the rule policy."""

    def __init__(self, agent: NeuralAgent):
        self.agent = agent

    def reset(self) -> None:
        self.agent.reset()

    def act(self, env: DialogueEnv, observation: np.ndarray) -> np.ndarray:
        return self.agent.act(env, observation)


@pytest.fixture(scope="module")
def envs() -> list[DialogueEnv]:
    return [DialogueEnv() for _ in range(VALIDATION_WIDTH)]


SHARED_GENERATOR = pytest.mark.xfail(
    strict=True,
    reason="known: NeuralAgent has one generator, reseeded at each dialogue's first turn, so side by side the "
    "sampling draws of the running dialogues interleave (validation with decoder=sample depends on "
    "VALIDATION_WIDTH); kept as it is, since fixing it changes such runs' validation numbers",
)


@pytest.mark.parametrize(
    "decoder", [d if d != "sample" else pytest.param(d, marks=SHARED_GENERATOR) for d in sorted(DECODERS)]
)
def test_side_by_side_dialogues_score_what_one_at_a_time_scores(envs, decoder):
    agent = NeuralAgent(exact_policy(), decoder, fallback=True, sample_seed=3)
    side_by_side = run_dialogues(agent, envs, SEEDS, keep_transcripts=len(SEEDS))
    one_at_a_time = run_dialogues(agent, envs[0], SEEDS, keep_transcripts=len(SEEDS))
    assert side_by_side.summary["dialogues"] == len(SEEDS)
    assert side_by_side.dialogues == one_at_a_time.dialogues  # per dialogue, in seed order
    assert side_by_side.summary == one_at_a_time.summary
    assert side_by_side.transcripts == one_at_a_time.transcripts
    lengths = {d["rounds"] for d in side_by_side.dialogues}
    assert len(lengths) > 1  # dialogues of different lengths: slots finish and refill at different steps


def test_an_agent_without_act_many_plays_one_dialogue_at_a_time(envs):
    neural = NeuralAgent(exact_policy(), "sample", fallback=True, sample_seed=3)
    reference = run_dialogues(neural, envs[0], SEEDS)
    through_many = run_dialogues(OneAtATime(neural), envs, SEEDS)
    assert through_many.dialogues == reference.dialogues and through_many.summary == reference.summary
    rule_many = run_dialogues(RuleAgent(envs[0]), envs, SEEDS[:4])
    rule_one = run_dialogues(RuleAgent(envs[0]), envs[0], SEEDS[:4])
    assert rule_many.dialogues == rule_one.dialogues and rule_many.summary == rule_one.summary


def test_a_validation_depends_only_on_the_policy(envs):
    """What lets a run's final validation reuse the last one: replaying it gives the same scores."""
    agent = NeuralAgent(exact_policy(), "expected", fallback=True)
    first = loop_module.validate(agent, envs, 10)
    run_dialogues(agent, envs[:3], range(5))  # other dialogues in between leave nothing behind
    assert loop_module.validate(agent, envs, 10) == first


def _tracker(tmp_path, monkeypatch, calls: list, **fields) -> RunTracker:
    def validate(agent, envs, dialogues):
        calls.append(dialogues)
        return {"paper_success": 0.1 * len(calls), "dialogues": dialogues}

    monkeypatch.setattr(loop_module, "validate", validate)
    monkeypatch.setattr(RunTracker, "save", lambda self, name, epoch: None)
    quiet = type("TB", (), {name: lambda *a: None for name in ("scalars", "validation", "hparams", "close")})
    ctx = RunContext(make_config(algo="ppo", **fields), tmp_path, None, None, None, None, tb=quiet())
    return RunTracker(ctx, None, dict, {}, {"epoch": 0}, {})


def test_the_final_validation_reuses_the_last_epochs(tmp_path, monkeypatch):
    calls: list = []
    tracker = _tracker(tmp_path, monkeypatch, calls, epochs=4, eval_every=3)
    tracker.start()
    for epoch in tracker.epochs(0):
        tracker.end_epoch(epoch, 0.0, {})
    assert len(calls) == 3  # start, epoch 3, the last epoch
    record = tracker.finish()
    assert len(calls) == 3 and record["final"]["paper_success"] == pytest.approx(0.3)


def test_a_resumed_run_with_no_epoch_left_validates_at_the_end(tmp_path, monkeypatch):
    calls: list = []
    tracker = _tracker(tmp_path, monkeypatch, calls, epochs=2, eval_every=1)
    for _ in tracker.epochs(2):  # resumed after its last epoch: nothing validated in this process
        pass
    assert tracker.finish()["final"]["paper_success"] == pytest.approx(0.1) and len(calls) == 1


def _probe_auc_gathering_every_step(expert_states, policy_states, generator) -> float:
    """The probe as written before its training rows were gathered once (the reference it must equal)."""
    from vrb.rollout import shuffled_indices

    states = torch.cat([expert_states, policy_states]).float()
    labels = torch.cat([torch.ones(len(expert_states)), torch.zeros(len(policy_states))])
    order = shuffled_indices(len(states), generator, states.device)
    train, held_out = order[: len(order) // 2], order[len(order) // 2 :]
    weight = torch.zeros(states.shape[1], requires_grad=True)
    bias = torch.zeros(1, requires_grad=True)
    optimizer = torch.optim.Adam([weight, bias], lr=PROBE_LR)
    with torch.enable_grad():
        for _ in range(PROBE_STEPS):
            logits = states[train] @ weight + bias
            loss = torch.nn.functional.binary_cross_entropy_with_logits(logits, labels[train])
            optimizer.zero_grad()
            loss.backward()
            optimizer.step()
    with torch.no_grad():
        return roc_auc(states[held_out] @ weight + bias, labels[held_out])


def test_the_state_probe_is_bit_for_bit_the_one_before():
    g = torch.Generator().manual_seed(0)
    expert = (torch.rand(300, STATE_DIM, generator=g) < 0.05).float()
    policy = (torch.rand(300, STATE_DIM, generator=g) < 0.07).float()
    fast = probe_auc(expert, policy, torch.Generator().manual_seed(1))
    assert fast == _probe_auc_gathering_every_step(expert, policy, torch.Generator().manual_seed(1))
