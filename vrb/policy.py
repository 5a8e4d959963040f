"""Networks: the multi-label Bernoulli dialogue policy and the state-value function, and the decoders.

A system turn is a set of dialogue acts, so the policy emits one independent Bernoulli per act (ConvLab-2's
MultiDiscretePolicy): log pi(a|s) of a multi-hot action is the sum of the per-act log-probabilities.

A *decoder* turns the 209 probabilities into the acts said; one decoder serves rollouts, validation and
``vrb.evaluate`` so that the policy is trained on the behaviour it is scored on (``DECODERS``):
- ``greedy``: every act with p > 0.5 (GDPL's evaluation; ConvLab-2's PPO also collects rollouts this way);
- ``sample``: one Bernoulli draw per act (the original GDPL's rollouts);
- ``expected``: the k most probable acts, k = round(sum of p) (at least one): as many acts as the policy
  expects to say, but never the tail of acts that each sit just above 0.5.
With the empty-action fallback, a turn in which no act is chosen says the single most probable act instead
(late in training 16-27% of greedy turns were empty otherwise; ConvLab-3 resamples instead).
"""

from __future__ import annotations

from collections.abc import Sequence

import torch
import torch.nn.functional as F
from torch import nn

from envs.multiwoz.vector import ACTION_DIM, STATE_DIM


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


def draw_device(generator: torch.Generator | None, default: torch.device | str) -> torch.device | str:
    """Where a draw from ``generator`` must be made: a generator draws only on its own device (the run's
    generator is a CPU one whatever the run's device), so a draw for CUDA tensors is made there and moved."""
    return generator.device if generator is not None else default


# A decoder: (logits of the whole batch, generator, the rows wanted) -> multi-hot actions of those rows. A
# decoder that draws random numbers draws them for every row, so the generator moves as for the whole batch.
ALL_ROWS = slice(None)


def _greedy(logits: torch.Tensor, generator: torch.Generator | None, rows: slice) -> torch.Tensor:
    return (logits[rows] > 0).float()


def _sample(logits: torch.Tensor, generator: torch.Generator | None, rows: slice) -> torch.Tensor:
    probs = torch.sigmoid(logits).to(draw_device(generator, logits.device))
    return torch.bernoulli(probs, generator=generator).to(logits.device)[rows]


def _expected(logits: torch.Tensor, generator: torch.Generator | None, rows: slice) -> torch.Tensor:
    """1 for the acts in the first ``count`` places of the descending order. (Written into those places by a
    scatter: the same as ``(order.argsort(-1) < count)``, since a permutation's argsort is its inverse, for half
    the time: the sort dominates a rollout step's decoding.)"""
    logits = logits[rows]
    count = torch.sigmoid(logits).sum(-1).round().clamp(min=1).long()
    order = logits.argsort(-1, descending=True)
    chosen = torch.arange(logits.shape[-1], device=logits.device) < count.unsqueeze(-1)
    return torch.zeros(logits.shape, dtype=torch.float32, device=logits.device).scatter_(
        -1, order, chosen.float()
    )


DECODERS = {"greedy": _greedy, "sample": _sample, "expected": _expected}


def decode(
    logits: torch.Tensor,
    decoder: str,
    generator: torch.Generator | None = None,
    fallback: bool = False,
    rows: slice = ALL_ROWS,
) -> torch.Tensor:
    """Multi-hot actions (float 0/1) of ``rows`` from per-act logits by ``decoder``; with ``fallback`` an empty
    action becomes the single most probable act."""
    actions = DECODERS[decoder](logits, generator, rows)
    if fallback:
        empty = actions.sum(-1) == 0
        if empty.any():
            actions[empty, logits[rows][empty].argmax(-1)] = 1.0
    return actions


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
        self,
        states: torch.Tensor,
        generator: torch.Generator | None = None,
        decoder: str = "sample",
        fallback: bool = False,
        rows: slice = ALL_ROWS,
    ) -> tuple[torch.Tensor, torch.Tensor]:
        """Decoded multi-hot actions (float 0/1) and their log-probabilities, for collecting rollouts; of
        ``rows`` only (a sampling worker's; the network still sees the whole batch, whose shape its numbers
        depend on, and the generator moves as for the whole batch)."""
        logits = self(states)
        actions = decode(logits, decoder, generator, fallback, rows)
        return actions, bernoulli_log_prob(logits[rows], actions)

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
