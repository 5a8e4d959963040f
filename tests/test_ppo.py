import pytest
import torch
from torch import nn

from vrb.learners import PPOOptions
from vrb.learners.ppo import PPO, clipped_surrogate_loss
from vrb.policy import MultiLabelPolicy, ValueNet
from vrb.rollout import RolloutBuffer, compute_gae

GAMMA, LAMBDA = 0.9, 0.8


def column(*values: float) -> torch.Tensor:
    return torch.tensor(values, dtype=torch.float64)


def gae(rewards, values, next_values, terminated, truncated):
    return compute_gae(
        column(*rewards),
        column(*values),
        column(*next_values),
        column(*terminated),
        column(*truncated),
        GAMMA,
        LAMBDA,
    )


def test_terminated_step_does_not_bootstrap():
    advantages, returns = gae([1, 2, 3], [0.5, 1.0, 1.5], [1.0, 1.5, 9.0], [0, 0, 1], [0, 0, 0])
    # delta2 = 3 - 1.5; delta1 = 2 + .9*1.5 - 1; delta0 = 1 + .9*1 - .5; A_t = delta_t + .72 A_{t+1}
    torch.testing.assert_close(advantages, column(3.8696, 3.43, 1.5))
    torch.testing.assert_close(returns, column(4.3696, 4.43, 3.0))


def test_truncated_step_bootstraps_from_next_state_value():
    advantages, _ = gae([1, 2, 3], [0.5, 1.0, 1.5], [1.0, 1.5, 2.0], [0, 0, 0], [0, 0, 1])
    # delta2 = 3 + .9*2 - 1.5 = 3.3
    torch.testing.assert_close(advantages, column(1.4 + 0.72 * (2.35 + 0.72 * 3.3), 2.35 + 0.72 * 3.3, 3.3))


def test_gae_never_crosses_an_episode_boundary():
    # episode 1 = steps 0-1 (truncated by the turn limit), episode 2 = steps 2-3 (terminated)
    advantages, returns = gae([1, 1, 1, 1], [1, 2, 3, 4], [2, 5, 4, 99], [0, 0, 0, 1], [0, 1, 0, 0])
    # A3 = 1-4; A2 = 1+.9*4-3 + .72*A3; A1 = 1+.9*5-2 (nothing from step 2); A0 = 1+.9*2-1 + .72*A1
    torch.testing.assert_close(advantages, column(1.8 + 0.72 * 3.5, 3.5, 1.6 - 0.72 * 3, -3.0))
    torch.testing.assert_close(returns, advantages + column(1, 2, 3, 4))


class FirstFeatureValue(nn.Module):
    """V(s) = s[0], so the buffer test controls every value by hand."""

    def forward(self, states: torch.Tensor) -> torch.Tensor:
        return states[..., 0]


def test_buffer_keeps_envs_apart_and_matches_compute_gae():
    buffer = RolloutBuffer(num_steps=2, num_envs=2, state_dim=1, action_dim=1)
    # env 0: one 2-step episode that terminates; env 1: a 1-step truncated episode, then a new one
    buffer.add(
        [[1.0], [10.0]], [[1], [0]], [[2.0], [20.0]], [-0.1, -0.2], [1, 5], [False, False], [False, True]
    )
    buffer.add(
        [[2.0], [30.0]], [[0], [1]], [[7.0], [40.0]], [-0.3, -0.4], [2, 6], [True, False], [False, False]
    )
    assert buffer.full and len(buffer) == 4
    with pytest.raises(IndexError, match="full"):
        buffer.add([[0.0]] * 2, [[0]] * 2, [[0.0]] * 2, [0, 0], [0, 0], [False] * 2, [False] * 2)
    flat = buffer.transitions()
    assert flat.states[:, 0].tolist() == [1.0, 10.0, 2.0, 30.0]  # step-major
    torch.testing.assert_close(buffer.flat_log_probs(), torch.tensor([-0.1, -0.2, -0.3, -0.4]))
    buffer.set_rewards(torch.tensor([1.0, 5.0, 2.0, 6.0]))
    buffer.compute_advantages(FirstFeatureValue(), 0.5, 1.0)
    # env 0: A1 = 2 - 2 = 0 (terminated); A0 = 1 + .5*2 - 1 + .5*A1 = 1
    # env 1: A0 = 5 + .5*20 - 10 = 5 (truncated, alone); A1 = 6 + .5*40 - 30 = -4 (end of buffer bootstraps)
    torch.testing.assert_close(buffer.advantages, torch.tensor([[1.0, 5.0], [0.0, -4.0]]))
    torch.testing.assert_close(buffer.returns, torch.tensor([[2.0, 15.0], [2.0, 26.0]]))


def test_compute_advantages_refuses_a_partial_buffer():
    buffer = RolloutBuffer(num_steps=2, num_envs=1, state_dim=1, action_dim=1)
    with pytest.raises(RuntimeError, match="holds 0 of 2 steps"):
        buffer.compute_advantages(FirstFeatureValue(), 0.99, 0.95)


def test_clipped_surrogate_hand_case():
    ratio = torch.tensor([0.5, 1.5, 1.0, 1.3])
    advantages = torch.tensor([1.0, 1.0, -1.0, -2.0])
    # min(0.5, 0.8)=0.5; min(1.5, 1.2)=1.2; -1; min(-2.6, -2.4)=-2.6 -> mean -0.475, negated
    assert clipped_surrogate_loss(ratio, advantages, 0.2).item() == pytest.approx(0.475)


def fill_bandit_buffer(policy: MultiLabelPolicy, generator: torch.Generator) -> RolloutBuffer:
    """One-step episodes from a constant state; reward 1 when act 0 is on."""
    buffer = RolloutBuffer(num_steps=16, num_envs=8, state_dim=4, action_dim=3)
    states = torch.ones(8, 4)
    while not buffer.full:
        actions, log_probs = policy.act(states, generator)
        buffer.add(states, actions, states, log_probs, actions[:, 0], torch.ones(8), torch.zeros(8))
    return buffer


def test_ppo_update_moves_probability_towards_rewarded_act():
    torch.manual_seed(0)
    generator = torch.Generator().manual_seed(0)
    policy, value = MultiLabelPolicy(4, 3, (16,)), ValueNet(4, (16,))
    config = PPOOptions(policy_lr=1e-2, value_lr=1e-2, minibatch_size=32, bc_coef=0)
    ppo = PPO.from_options(policy, value, config, 0.99, generator)
    before = torch.sigmoid(policy(torch.ones(1, 4)))[0]
    stats = {}
    for _ in range(3):
        stats = ppo.update(fill_bandit_buffer(policy, generator))
    after = torch.sigmoid(policy(torch.ones(1, 4)))[0]
    assert after[0] > before[0] + 0.2
    assert set(stats) == {
        "policy_loss",
        "value_loss",
        "entropy",
        "approx_kl",
        "clip_fraction",
        "bc_loss",
        "explained_variance",
        "update_rounds",
    }
    assert all(torch.isfinite(torch.tensor(v)) for v in stats.values())
    assert 0.0 <= stats["clip_fraction"] <= 1.0 and stats["approx_kl"] >= 0.0


def test_ppo_optimiser_state_round_trips():
    policy, value = MultiLabelPolicy(4, 3, (8,)), ValueNet(4, (8,))
    ppo = PPO.from_options(policy, value, PPOOptions(bc_coef=0), 0.99)
    ppo.update(fill_bandit_buffer(policy, torch.Generator().manual_seed(0)))
    other = PPO.from_options(policy, value, PPOOptions(bc_coef=0), 0.99)
    other.load_state_dict(ppo.state_dict())
    assert (
        other.policy_optimizer.state_dict()["state"].keys()
        == ppo.policy_optimizer.state_dict()["state"].keys()
    )


def test_target_kl_stops_the_update_early():
    torch.manual_seed(0)
    generator = torch.Generator().manual_seed(0)
    policy, value = MultiLabelPolicy(4, 3, (8,)), ValueNet(4, (8,))
    ppo = PPO(
        policy,
        value,
        policy_lr=0.05,
        value_lr=1e-3,
        gamma=0.9,
        gae_lambda=0.9,
        clip_coef=0.2,
        update_epochs=10,
        minibatch_size=8,
        ent_coef=0.0,
        max_grad_norm=10.0,
        target_kl=1e-6,
        generator=generator,
    )
    assert ppo.update(fill_bandit_buffer(policy, generator))["update_rounds"] == 1


def test_behaviour_cloning_term_pulls_towards_the_expert_act():
    """With no reward signal (constant rewards), the BC term alone moves the policy to the expert's act 2."""
    from vrb.expert import ExpertSampler
    from vrb.rollout import Transitions

    torch.manual_seed(0)
    generator = torch.Generator().manual_seed(0)
    policy, value = MultiLabelPolicy(4, 3, (16,)), ValueNet(4, (16,))
    expert = ExpertSampler(
        Transitions(torch.ones(64, 4), torch.tensor([[0.0, 0.0, 1.0]] * 64), torch.ones(64, 4)), generator
    )
    config = PPOOptions(policy_lr=1e-2, value_lr=1e-2, bc_coef=1.0)
    ppo = PPO.from_options(policy, value, config, 0.99, generator, expert)
    before = torch.sigmoid(policy(torch.ones(1, 4)))[0]
    buffer = fill_bandit_buffer(policy, generator)
    buffer.rewards.zero_()
    stats = ppo.update(buffer)
    after = torch.sigmoid(policy(torch.ones(1, 4)))[0]
    assert after[2] > before[2] + 0.1 and after[0] < before[0] and stats["bc_loss"] > 0
    with pytest.raises(ValueError, match="needs expert transitions"):
        PPO.from_options(policy, value, config, 0.99, generator)
