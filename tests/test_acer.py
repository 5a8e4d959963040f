import math

import numpy as np
import pytest
import torch

from baselines.acer import policy_gradient_terms, retrace_targets, trust_region_step
from baselines.common import SummaryActions, SummaryPolicy
from envs.dialogue_env import DialogueEnv
from vrb.acting import run_dialogues
from vrb.algorithms import make_config
from vrb.evaluate import load_agent
from vrb.train import run

GAMMA = 0.9
REWARDS = torch.tensor([1.0, 2.0, 3.0])
Q_TAKEN = torch.tensor([0.5, 1.0, 1.5])
VALUES = torch.tensor([0.4, 0.8, 1.2])
NEXT_VALUES = torch.tensor([0.8, 1.2, 2.0])
RATIOS = torch.tensor([0.5, 2.0, 1.0])


def retrace(terminated=(0, 0, 0), truncated=(0, 0, 0)) -> list[float]:
    return retrace_targets(
        REWARDS,
        Q_TAKEN,
        VALUES,
        NEXT_VALUES,
        RATIOS,
        torch.tensor(terminated, dtype=torch.float),
        torch.tensor(truncated, dtype=torch.float),
        GAMMA,
    ).tolist()


def test_retrace_bootstraps_at_the_segment_end_and_truncates_ratios_at_one():
    # t=2: 3 + .9 * V(s'_2)=2.0 -> 4.8; carry min(1, 1)(4.8 - 1.5) + 1.2 = 4.5
    # t=1: 2 + .9 * 4.5 = 6.05; carry min(1, 2)(6.05 - 1.0) + 0.8 = 5.85
    # t=0: 1 + .9 * 5.85 = 6.265
    assert retrace() == pytest.approx([6.265, 6.05, 4.8])


def test_retrace_restarts_from_zero_after_a_terminal_step():
    # t=1 ends the dialogue: 2 + 0 = 2; carry 1 * (2 - 1) + 0.8 = 1.8; t=0: 1 + .9 * 1.8
    assert retrace(terminated=(0, 1, 0)) == pytest.approx([2.62, 2.0, 4.8])


def test_retrace_restarts_from_v_of_next_state_after_a_cut_step():
    # t=1 cut at the turn limit: 2 + .9 * 1.2 = 3.08; carry 3.08 - 1 + 0.8 = 2.88; t=0: 1 + .9 * 2.88
    assert retrace(truncated=(0, 1, 0)) == pytest.approx([3.592, 3.08, 4.8])


def test_truncated_importance_weight_and_bias_correction():
    log_probs = torch.log(torch.tensor([[0.8, 0.2]])).requires_grad_()
    behaviour = torch.tensor([[0.05, 0.95]])
    q, q_ret, c = torch.tensor([[1.0, 3.0]]), torch.tensor([2.0]), 2.0
    truncated, correction = policy_gradient_terms(log_probs, behaviour, torch.tensor([0]), q, q_ret, c)
    # V = .8 * 1 + .2 * 3 = 1.4; rho(a_t) = .8 / .05 = 16, truncated to c = 2
    assert truncated.item() == pytest.approx(2 * math.log(0.8) * (2.0 - 1.4))
    # [1 - c / rho(a)]_+ pi(a): a=0: (1 - 2/16) * .8 = .7; a=1: rho = .2/.95 < c -> 0
    assert correction.item() == pytest.approx(0.7 * math.log(0.8) * (1.0 - 1.4))
    (truncated + correction).sum().backward()
    assert log_probs.grad[0].tolist() == pytest.approx([2 * 0.6 + 0.7 * -0.4, 0.0])


def test_trust_region_projects_only_when_the_linearised_kl_exceeds_delta():
    g, k = torch.tensor([[1.0, 0.0]]), torch.tensor([[1.0, 1.0]])
    z = trust_region_step(g, k, delta=0.5)  # k.g = 1 > .5: z = g - (1 - .5) / 2 * k
    assert z[0].tolist() == pytest.approx([0.75, -0.25])
    assert (k * z).sum().item() == pytest.approx(0.5)
    assert torch.equal(trust_region_step(g, k, delta=2.0), g)


def test_summary_actions_round_trip_through_the_policy():
    corpus = np.array([[1, 0, 0], [1, 0, 0], [0, 1, 1], [1, 0, 0], [0, 1, 1], [0, 0, 1]], dtype=np.float32)
    summary = SummaryActions.from_corpus(corpus, 2)
    assert summary.vectors.tolist() == [[1, 0, 0], [0, 1, 1]] and summary.coverage == pytest.approx(5 / 6)
    assert summary.nearest(np.array([[0, 0, 1], [1, 1, 0]], dtype=np.float32)).tolist() == [1, 0]
    policy = SummaryPolicy(summary.vectors, state_dim=4, hidden_sizes=(8,))
    actions, log_probs = policy.act(torch.zeros(5, 4), torch.Generator().manual_seed(0))
    index = summary.index_of(actions)
    assert torch.allclose(log_probs, torch.log_softmax(policy(torch.zeros(5, 4)), -1)[torch.arange(5), index])
    with pytest.raises(ValueError, match="not one of the summary actions"):
        summary.index_of(torch.tensor([[0.0, 0.0, 1.0]]))


@pytest.mark.slow
def test_tiny_run_writes_loadable_checkpoints_and_resumes(tmp_path):
    cfg = make_config(
        algo="acer",
        epochs=2,
        steps_per_epoch=64,
        num_envs=2,
        eval_every=1,
        eval_dialogues=2,
        mle_epochs=1,
        acer_num_actions=20,
        acer_replay_ratio=1,
        acer_replay_size=128,
    )
    record = run(cfg, tmp_path)
    assert {"start", "best", "final", "mle"} <= set(record)
    assert (tmp_path / "results.json").is_file() and (tmp_path / "best.pt").is_file()
    agent, _ = load_agent(tmp_path / "last.pt")
    result = run_dialogues(agent, DialogueEnv(), [0])
    assert len(result.dialogues) == 1
    resumed = run(cfg.replace(epochs=3), tmp_path, resume=True)
    assert resumed["best"]["success"] >= record["best"]["success"]
