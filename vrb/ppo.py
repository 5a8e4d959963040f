"""On-policy machinery shared by every learner: the rollout buffer, GAE, and the clipped PPO update.

Differences from ConvLab-2's PPO/GDPL update, on purpose:
- GAE stops at every episode end. ConvLab-2 stored dialogues back to back and only cut at ``done``, so a
  dialogue cut by the turn limit leaked advantages from the next, unrelated dialogue. Here a terminated step
  does not bootstrap, a truncated step bootstraps from V(s'), and neither carries advantages across.
- Value targets are the GAE(lambda) returns A + V (CleanRL/SB3), not ConvLab-2's Monte-Carlo returns.
Kept from ConvLab-2: separate policy (RMSprop) and value (Adam) optimisers, advantages normalised once over
the whole batch, mean-squared-error value loss, gradient-norm clipping.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import torch
from torch import nn

from vrb.options import PPOOptions
from vrb.policy import MultiLabelPolicy, draw_device


@dataclass(frozen=True)
class Transitions:
    """A flat batch of (s, a, s'): what a reward estimator sees, from the expert corpus or from rollouts."""

    states: torch.Tensor
    actions: torch.Tensor
    next_states: torch.Tensor

    def __len__(self) -> int:
        return self.states.shape[0]

    def index(self, idx: torch.Tensor) -> Transitions:
        return Transitions(self.states[idx], self.actions[idx], self.next_states[idx])


class RolloutBuffer:
    """Fixed-size [num_steps, num_envs] storage of one epoch of interaction.

    ``next_states`` holds the true s' of each step (for an auto-reset vector env: the final observation of
    a finished episode, not the first of the next one), so V(s') needs no look-ahead into the buffer.
    """

    def __init__(
        self,
        num_steps: int,
        num_envs: int,
        state_dim: int,
        action_dim: int,
        device: torch.device | str = "cpu",
    ):
        self.num_steps, self.num_envs = num_steps, num_envs

        def zeros(*feature_dims: int) -> torch.Tensor:
            return torch.zeros(num_steps, num_envs, *feature_dims, device=device)

        self.states = zeros(state_dim)
        self.actions = zeros(action_dim)
        self.next_states = zeros(state_dim)
        self.log_probs = zeros()
        self.rewards = zeros()
        self.terminated = zeros()
        self.truncated = zeros()
        self.values = zeros()
        self.next_values = zeros()
        self.advantages = zeros()
        self.returns = zeros()
        self.step = 0

    def __len__(self) -> int:
        return self.num_steps * self.num_envs

    @property
    def full(self) -> bool:
        return self.step == self.num_steps

    def reset(self) -> None:
        self.step = 0

    def add(
        self,
        states: Any,
        actions: Any,
        next_states: Any,
        log_probs: Any,
        rewards: Any,
        terminated: Any,
        truncated: Any,
    ) -> None:
        """One vector-env step; every argument has a leading num_envs dimension (tensors or numpy arrays)."""
        if self.full:
            raise IndexError(
                f"rollout buffer is full ({self.num_steps} steps x {self.num_envs} envs); reset() it"
            )
        t = self.step
        for name, value in (
            ("states", states),
            ("actions", actions),
            ("next_states", next_states),
            ("log_probs", log_probs),
            ("rewards", rewards),
            ("terminated", terminated),
            ("truncated", truncated),
        ):
            target = getattr(self, name)
            target[t] = torch.as_tensor(value, dtype=target.dtype, device=target.device)
        self.step += 1

    def transitions(self) -> Transitions:
        """All steps flattened step-major (index = t * num_envs + env)."""
        return Transitions(_flat(self.states), _flat(self.actions), _flat(self.next_states))

    def flat_log_probs(self) -> torch.Tensor:
        return _flat(self.log_probs)

    def set_rewards(self, rewards: torch.Tensor) -> None:
        """Replace the env rewards with learned ones, given in the order of ``transitions()``."""
        self.rewards.copy_(rewards.reshape(self.num_steps, self.num_envs))

    @torch.no_grad()
    def compute_advantages(self, value: nn.Module, gamma: float, gae_lambda: float) -> None:
        if not self.full:
            raise RuntimeError(f"rollout buffer holds {self.step} of {self.num_steps} steps; fill it first")
        self.values.copy_(value(self.states))
        self.next_values.copy_(value(self.next_states))
        self.advantages, self.returns = compute_gae(
            self.rewards, self.values, self.next_values, self.terminated, self.truncated, gamma, gae_lambda
        )


def shuffled_indices(n: int, generator: torch.Generator | None, device: torch.device | str) -> torch.Tensor:
    """A permutation drawn on the generator's own device (CPU or CUDA), returned on ``device``."""
    return torch.randperm(n, generator=generator, device=draw_device(generator, "cpu")).to(device)


def _flat(x: torch.Tensor) -> torch.Tensor:
    return x.reshape(-1, *x.shape[2:])


def compute_gae(
    rewards: torch.Tensor,
    values: torch.Tensor,
    next_values: torch.Tensor,
    terminated: torch.Tensor,
    truncated: torch.Tensor,
    gamma: float,
    gae_lambda: float,
) -> tuple[torch.Tensor, torch.Tensor]:
    """GAE over time-major tensors [T, ...]; returns (advantages, value targets = advantages + values).

    delta_t = r_t + gamma * V(s'_t) * (1 - terminated_t) - V(s_t)
    A_t = delta_t + gamma * lambda * (1 - done_t) * A_{t+1},  done = terminated or truncated.
    The last stored step bootstraps from V(s') like a truncation.
    """
    not_terminal = 1.0 - terminated
    continues = (1.0 - terminated) * (1.0 - truncated)
    deltas = rewards + gamma * next_values * not_terminal - values
    advantages = torch.zeros_like(rewards)
    running = torch.zeros_like(rewards[0])
    for t in reversed(range(rewards.shape[0])):
        running = deltas[t] + gamma * gae_lambda * continues[t] * running
        advantages[t] = running
    return advantages, advantages + values


def clipped_surrogate_loss(ratio: torch.Tensor, advantages: torch.Tensor, clip_coef: float) -> torch.Tensor:
    """PPO's pessimistic objective, negated for gradient descent."""
    unclipped = ratio * advantages
    clipped = torch.clamp(ratio, 1.0 - clip_coef, 1.0 + clip_coef) * advantages
    return -torch.min(unclipped, clipped).mean()


class PPO:
    """Clipped-surrogate update of a policy and its value function from one full RolloutBuffer."""

    def __init__(
        self,
        policy: MultiLabelPolicy,
        value: nn.Module,
        *,
        policy_lr: float,
        value_lr: float,
        gamma: float,
        gae_lambda: float,
        clip_coef: float,
        update_epochs: int,
        minibatch_size: int,
        ent_coef: float,
        max_grad_norm: float,
        target_kl: float = 0.0,
        bc_coef: float = 0.0,
        expert: Any = None,
        generator: torch.Generator | None = None,
    ):
        self.policy, self.value = policy, value
        self.policy_optimizer = torch.optim.RMSprop(policy.parameters(), lr=policy_lr, foreach=True)
        self.value_optimizer = torch.optim.Adam(value.parameters(), lr=value_lr, foreach=True)
        self.gamma, self.gae_lambda, self.clip_coef = gamma, gae_lambda, clip_coef
        self.update_epochs, self.minibatch_size = update_epochs, minibatch_size
        self.ent_coef, self.max_grad_norm, self.target_kl = ent_coef, max_grad_norm, target_kl
        self.generator = generator
        if bc_coef and expert is None:
            raise ValueError(f"bc_coef = {bc_coef}: the behaviour-cloning term needs expert transitions")
        self.bc_coef, self.expert = bc_coef, expert

    @classmethod
    def from_options(
        cls,
        policy: MultiLabelPolicy,
        value: nn.Module,
        options: PPOOptions,
        gamma: float,
        generator: torch.Generator | None = None,
        expert: Any = None,
    ) -> PPO:
        return cls(
            policy,
            value,
            policy_lr=options.policy_lr,
            value_lr=options.value_lr,
            gamma=gamma,
            gae_lambda=options.gae_lambda,
            clip_coef=options.clip_coef,
            update_epochs=options.update_epochs,
            minibatch_size=options.minibatch_size,
            ent_coef=options.ent_coef,
            max_grad_norm=options.max_grad_norm,
            target_kl=options.target_kl,
            bc_coef=options.bc_coef,
            expert=expert,
            generator=generator,
        )

    def update(self, buffer: RolloutBuffer) -> dict[str, float]:
        """GAE on the buffer's rewards, then K rounds of shuffled minibatch steps; returns mean statistics."""
        buffer.compute_advantages(self.value, self.gamma, self.gae_lambda)
        states, actions = _flat(buffer.states), _flat(buffer.actions)
        old_log_probs, returns = _flat(buffer.log_probs), _flat(buffer.returns)
        advantages = _flat(buffer.advantages)
        advantages = (advantages - advantages.mean()) / (advantages.std() + 1e-8)

        totals: dict[str, float] = dict.fromkeys(
            ("policy_loss", "value_loss", "entropy", "approx_kl", "clip_fraction", "bc_loss"), 0.0
        )
        steps = rounds = 0
        for rounds in range(1, self.update_epochs + 1):  # noqa: B007 - the count of rounds run is logged
            order = shuffled_indices(len(buffer), self.generator, states.device)
            round_kl = []
            for idx in order.split(self.minibatch_size):
                stats = self._minibatch_step(
                    states[idx], actions[idx], old_log_probs[idx], advantages[idx], returns[idx]
                )
                for key, value in stats.items():
                    totals[key] += value
                round_kl.append(stats["approx_kl"])
                steps += 1
            if self.target_kl and sum(round_kl) / len(round_kl) > self.target_kl:
                break  # the policy moved far enough from the one that sampled the data
        result = {key: total / steps for key, total in totals.items()}
        result["update_rounds"] = rounds
        result["explained_variance"] = _explained_variance(_flat(buffer.values), returns)
        return result

    def _minibatch_step(
        self,
        states: torch.Tensor,
        actions: torch.Tensor,
        old_log_probs: torch.Tensor,
        advantages: torch.Tensor,
        returns: torch.Tensor,
    ) -> dict[str, float]:
        log_probs, entropy = self.policy.log_prob_and_entropy(states, actions)
        log_ratio = log_probs - old_log_probs
        ratio = log_ratio.exp()
        policy_loss = clipped_surrogate_loss(ratio, advantages, self.clip_coef)
        entropy_mean = entropy.mean()
        loss = policy_loss - self.ent_coef * entropy_mean
        bc_loss = torch.zeros((), device=states.device)
        if self.bc_coef:
            demo = self.expert.sample(len(states))
            bc_loss = -self.policy.log_prob(demo.states, demo.actions).mean()
            loss = loss + self.bc_coef * bc_loss
        clipped_step(self.policy_optimizer, self.policy, loss, self.max_grad_norm)

        value_loss = (self.value(states) - returns).pow(2).mean()
        clipped_step(self.value_optimizer, self.value, value_loss, self.max_grad_norm)

        with torch.no_grad():
            approx_kl = (
                (ratio - 1.0) - log_ratio
            ).mean()  # Schulman's low-variance estimator of KL(old||new)
            clip_fraction = ((ratio - 1.0).abs() > self.clip_coef).float().mean()
        return {
            "policy_loss": policy_loss.item(),
            "value_loss": value_loss.item(),
            "entropy": entropy_mean.item(),
            "approx_kl": approx_kl.item(),
            "clip_fraction": clip_fraction.item(),
            "bc_loss": bc_loss.item(),
        }

    def state_dict(self) -> dict[str, Any]:
        return {
            "policy_optimizer": self.policy_optimizer.state_dict(),
            "value_optimizer": self.value_optimizer.state_dict(),
        }

    def load_state_dict(self, state: dict[str, Any]) -> None:
        self.policy_optimizer.load_state_dict(state["policy_optimizer"])
        self.value_optimizer.load_state_dict(state["value_optimizer"])


def clipped_step(
    optimizer: torch.optim.Optimizer, module: nn.Module, loss: torch.Tensor, max_grad_norm: float
) -> None:
    """One optimiser step on ``loss`` with the module's gradient norm clipped (every learner's update)."""
    optimizer.zero_grad(set_to_none=True)
    loss.backward()
    nn.utils.clip_grad_norm_(module.parameters(), max_grad_norm)
    optimizer.step()


def _explained_variance(predictions: torch.Tensor, targets: torch.Tensor) -> float:
    """1 - Var(target - prediction) / Var(target); 1 is perfect, <= 0 is no better than a constant."""
    target_var = targets.var()
    if target_var == 0:
        return float("nan")
    return (1.0 - (targets - predictions).var() / target_var).item()
