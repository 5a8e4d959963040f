import math

import pytest
import torch

from vrb.learners import MLEOptions
from vrb.learners.mle import act_scores, behaviour_cloning, behaviour_cloning_from_options
from vrb.policy import ACTION_DIM, STATE_DIM, MultiLabelPolicy, ValueNet


def linear_shapes(module: torch.nn.Module) -> list[tuple[int, int]]:
    return [(m.in_features, m.out_features) for m in module.modules() if isinstance(m, torch.nn.Linear)]


def test_network_shapes_match_convlab():
    assert linear_shapes(MultiLabelPolicy()) == [(STATE_DIM, 100), (100, 100), (100, ACTION_DIM)]
    assert linear_shapes(ValueNet()) == [(STATE_DIM, 50), (50, 50), (50, 1)]
    assert ValueNet()(torch.zeros(7, STATE_DIM)).shape == (7,)


def test_log_prob_and_entropy_match_manual_bernoulli():
    torch.manual_seed(0)
    policy = MultiLabelPolicy(6, 4, (8,)).double()
    states = torch.randn(5, 6, dtype=torch.float64)
    actions = torch.bernoulli(torch.full((5, 4), 0.5, dtype=torch.float64))
    p = torch.sigmoid(policy(states))
    manual_log_prob = (actions * p.log() + (1 - actions) * (1 - p).log()).sum(-1)
    manual_entropy = -(p * p.log() + (1 - p) * (1 - p).log()).sum(-1)
    torch.testing.assert_close(policy.log_prob(states, actions), manual_log_prob)
    torch.testing.assert_close(policy.entropy(states), manual_entropy)
    log_prob, entropy = policy.log_prob_and_entropy(states, actions)
    torch.testing.assert_close(log_prob, manual_log_prob)
    torch.testing.assert_close(entropy, manual_entropy)


def test_log_prob_stays_finite_for_saturated_logits():
    policy = MultiLabelPolicy(2, 2, (2,))
    with torch.no_grad():
        for p in policy.parameters():
            p.zero_()
        policy.net[-1].bias.copy_(torch.tensor([200.0, -200.0]))
    log_prob = policy.log_prob(torch.zeros(1, 2), torch.tensor([[0.0, 1.0]]))
    assert torch.isfinite(log_prob).all() and log_prob.item() == pytest.approx(-400.0)


def test_greedy_takes_acts_above_one_half_and_sampling_is_seeded():
    policy = MultiLabelPolicy(3, 4, (5,))
    with torch.no_grad():
        for p in policy.parameters():
            p.zero_()
        policy.net[-1].bias.copy_(torch.tensor([2.0, -2.0, 0.0, 0.1]))
    states = torch.zeros(4000, 3)
    assert policy.greedy(states[:1]).tolist() == [[1.0, 0.0, 0.0, 1.0]]
    actions, log_prob = policy.act(states, torch.Generator().manual_seed(1))
    again, _ = policy.act(states, torch.Generator().manual_seed(1))
    assert torch.equal(actions, again)
    torch.testing.assert_close(log_prob, policy.log_prob(states, actions))
    expected = torch.sigmoid(torch.tensor([2.0, -2.0, 0.0, 0.1]))
    assert torch.allclose(actions.mean(0), expected, atol=0.03)


def synthetic_demonstrations(n: int, seed: int) -> tuple[torch.Tensor, torch.Tensor]:
    gen = torch.Generator().manual_seed(seed)
    states = torch.bernoulli(torch.full((n, 12), 0.3), generator=gen)
    actions = torch.stack([states[:, 0], states[:, 1] * states[:, 2], 1 - states[:, 3], states[:, 4]], -1)
    return states, actions


def test_act_scores_micro_average():
    predicted = torch.tensor([[1, 1, 0], [0, 1, 0]])
    target = torch.tensor([[1, 0, 0], [0, 1, 1]])
    scores = act_scores(predicted, target)  # TP 2, FP 1, FN 1
    assert (scores.precision, scores.recall) == (pytest.approx(2 / 3), pytest.approx(2 / 3))
    assert scores.f1 == pytest.approx(2 / 3)
    assert act_scores(torch.zeros(1, 3), torch.zeros(1, 3)).f1 == 0.0


def test_behaviour_cloning_learns_a_fixed_mapping():
    torch.manual_seed(0)
    train_s, train_a = synthetic_demonstrations(2000, 1)
    val_s, val_a = synthetic_demonstrations(500, 2)
    policy = MultiLabelPolicy(12, 4, (32, 32))
    history = behaviour_cloning(
        policy,
        train_s.numpy(),
        train_a.numpy(),
        val_s,
        val_a,
        epochs=6,
        lr=3e-3,
        weight_decay=1e-5,
        pos_weight=5.0,
        batch_size=32,
        generator=torch.Generator().manual_seed(0),
    )
    assert [h["epoch"] for h in history] == list(range(6))
    assert history[-1]["val_loss"] < history[0]["val_loss"]
    best = min(history, key=lambda h: h["val_loss"])
    assert best["f1"] > 0.95
    scores = act_scores(policy.greedy(val_s), val_a)  # the best-loss weights are the ones kept
    assert scores.f1 == pytest.approx(best["f1"])


def test_behaviour_cloning_rejects_mismatched_arrays():
    s, a = synthetic_demonstrations(10, 0)
    with pytest.raises(ValueError, match="train set has 10 states and 9 actions"):
        behaviour_cloning_from_options(MultiLabelPolicy(12, 4), s, a[:9], s, a, MLEOptions(mle_epochs=1))


def test_entropy_of_uniform_policy_is_n_log_2():
    policy = MultiLabelPolicy(3, 7, (4,))
    with torch.no_grad():
        for p in policy.parameters():
            p.zero_()
    assert policy.entropy(torch.zeros(1, 3)).item() == pytest.approx(7 * math.log(2))


def fixed_policy(biases: list[float]) -> MultiLabelPolicy:
    policy = MultiLabelPolicy(3, len(biases), (5,))
    with torch.no_grad():
        for p in policy.parameters():
            p.zero_()
        policy.net[-1].bias.copy_(torch.tensor(biases))
    return policy


def test_decoders_and_the_empty_action_fallback():
    states = torch.zeros(2, 3)
    confident = fixed_policy([2.0, -2.0, 0.0, 0.1])
    assert confident.act(states, decoder="greedy")[0].tolist() == [[1.0, 0.0, 0.0, 1.0]] * 2
    # expected: round(sum p) = round(0.88 + 0.12 + 0.5 + 0.52) = 2 acts, the two most probable
    assert confident.act(states, decoder="expected")[0].tolist() == [[1.0, 0.0, 0.0, 1.0]] * 2
    shy = fixed_policy([-1.0, -0.2, -3.0, -0.5])  # no act above one half; sum p = 1.0
    assert shy.act(states, decoder="greedy")[0].sum() == 0
    assert shy.act(states, decoder="greedy", fallback=True)[0].tolist() == [[0.0, 1.0, 0.0, 0.0]] * 2
    assert shy.act(states, decoder="expected")[0].tolist() == [[0.0, 1.0, 0.0, 0.0]] * 2
    actions, log_probs = shy.act(states, torch.Generator().manual_seed(0), decoder="sample", fallback=True)
    assert (actions.sum(-1) >= 1).all()
    torch.testing.assert_close(log_probs, shy.log_prob(states, actions))
