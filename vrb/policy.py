"""Networks: the multi-label Bernoulli dialogue policy and the state-value function.

A system turn is a set of dialogue acts, so the policy emits one independent Bernoulli per act (ConvLab-2's
MultiDiscretePolicy): log pi(a|s) of a multi-hot action is the sum of the per-act log-probabilities.
"""

from __future__ import annotations

from collections.abc import Sequence

import torch
import torch.nn.functional as F
from torch import nn

STATE_DIM = 340
ACTION_DIM = 209


def mlp(sizes: Sequence[int]) -> nn.Sequential:
    """Linear layers with ReLU between them (none after the last)."""
    layers: list[nn.Module] = []
    for i, (n_in, n_out) in enumerate(zip(sizes[:-1], sizes[1:], strict=True)):
        if i:
            layers.append(nn.ReLU())
        layers.append(nn.Linear(n_in, n_out))
    return nn.Sequential(*layers)


def bernoulli_log_prob(logits: torch.Tensor, actions: torch.Tensor) -> torch.Tensor:
    """log pi(a|s) summed over acts: a*log(sigma(l)) + (1-a)*log(1-sigma(l)), stable for large |l|."""
    return -F.binary_cross_entropy_with_logits(logits, actions, reduction="none").sum(-1)


def bernoulli_entropy(logits: torch.Tensor) -> torch.Tensor:
    """Entropy of the product distribution: sum over acts of softplus(l) - sigma(l)*l."""
    return (F.softplus(logits) - torch.sigmoid(logits) * logits).sum(-1)


class MultiLabelPolicy(nn.Module):
    def __init__(
        self,
        state_dim: int = STATE_DIM,
        action_dim: int = ACTION_DIM,
        hidden_sizes: Sequence[int] = (100, 100),
    ):
        super().__init__()
        self.net = mlp([state_dim, *hidden_sizes, action_dim])

    def forward(self, states: torch.Tensor) -> torch.Tensor:
        """Per-act logits, shape [..., action_dim]."""
        return self.net(states)

    @torch.no_grad()
    def act(
        self, states: torch.Tensor, generator: torch.Generator | None = None
    ) -> tuple[torch.Tensor, torch.Tensor]:
        """Sampled multi-hot actions (float 0/1) and their log-probabilities, for collecting rollouts."""
        logits = self(states)
        actions = torch.bernoulli(torch.sigmoid(logits), generator=generator)
        return actions, bernoulli_log_prob(logits, actions)

    @torch.no_grad()
    def greedy(self, states: torch.Tensor) -> torch.Tensor:
        """Every act with p > 0.5 (logit > 0), for evaluation."""
        return (self(states) > 0).float()

    def log_prob(self, states: torch.Tensor, actions: torch.Tensor) -> torch.Tensor:
        return bernoulli_log_prob(self(states), actions)

    def entropy(self, states: torch.Tensor) -> torch.Tensor:
        return bernoulli_entropy(self(states))

    def log_prob_and_entropy(
        self, states: torch.Tensor, actions: torch.Tensor
    ) -> tuple[torch.Tensor, torch.Tensor]:
        """Both from one forward pass (the PPO update needs both)."""
        logits = self(states)
        return bernoulli_log_prob(logits, actions), bernoulli_entropy(logits)


class ValueNet(nn.Module):
    def __init__(self, state_dim: int = STATE_DIM, hidden_sizes: Sequence[int] = (50, 50)):
        super().__init__()
        self.net = mlp([state_dim, *hidden_sizes, 1])

    def forward(self, states: torch.Tensor) -> torch.Tensor:
        """V(s), shape [...] (the trailing unit dimension is dropped)."""
        return self.net(states).squeeze(-1)
