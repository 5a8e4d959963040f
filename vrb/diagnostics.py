"""What tells a researcher whether a learned reward is informative (TensorBoard panel ``diagnostics/``).

- ``probe_auc``: a logistic probe trained to tell expert from policy states *by the state alone*, scored by
  ROC AUC on held-out halves. Near 1, an estimator can win by scoring where a dialogue is rather than what the
  system did; near 0.5, the states give nothing away and only the actions can.
- ``decoding_stats``: greedy acts per turn, the share of turns in which no act passes 0.5 (before any
  fallback) and the policy's entropy (nats over the 209 acts) on the epoch's states. A policy that succeeds by
  saying everything at once shows many acts per turn; a collapsing one shows empty turns.
- ``reward_parts``: the share of the learned reward r = f - c log pi that comes from the log pi term; near 1,
  the "learned" reward is mostly an entropy bonus.
The estimator's own statistics (f on expert and policy batches, KL against I_c, phi) join them in the panel.
"""

from __future__ import annotations

import torch

from vrb.policy import MultiLabelPolicy, bernoulli_entropy
from vrb.rollout import shuffled_indices

PROBE_STEPS = 150
PROBE_LR = 0.05


def roc_auc(scores: torch.Tensor, labels: torch.Tensor) -> float:
    """Probability that a random positive scores above a random negative (ties count half)."""
    positives, negatives = scores[labels > 0.5], scores[labels <= 0.5]
    if len(positives) == 0 or len(negatives) == 0:
        return float("nan")
    above = (positives[:, None] > negatives[None, :]).float().mean()
    ties = (positives[:, None] == negatives[None, :]).float().mean()
    return (above + 0.5 * ties).item()


def probe_auc(expert_states: torch.Tensor, policy_states: torch.Tensor, generator: torch.Generator) -> float:
    """Held-out AUC of a logistic regression telling expert (1) from policy (0) states, trained on one half."""
    states = torch.cat([expert_states, policy_states.to(expert_states.device)]).float()
    device = states.device
    labels = torch.cat([torch.ones(len(expert_states)), torch.zeros(len(policy_states))]).to(device)
    order = shuffled_indices(len(states), generator, device)
    train, held_out = order[: len(order) // 2], order[len(order) // 2 :]
    weight = torch.zeros(states.shape[1], requires_grad=True, device=device)
    bias = torch.zeros(1, requires_grad=True, device=device)
    optimizer = torch.optim.Adam([weight, bias], lr=PROBE_LR)
    # gathered once, not at every step: the same rows (half of the probe's time was this copy)
    train_states, train_labels = states[train], labels[train]
    with torch.enable_grad():
        for _ in range(PROBE_STEPS):
            logits = train_states @ weight + bias
            loss = torch.nn.functional.binary_cross_entropy_with_logits(logits, train_labels)
            optimizer.zero_grad()
            loss.backward()
            optimizer.step()
    with torch.no_grad():
        return roc_auc(states[held_out] @ weight + bias, labels[held_out])


@torch.no_grad()
def decoding_stats(policy: MultiLabelPolicy, states: torch.Tensor) -> dict[str, float]:
    logits = policy(states)
    acts = (logits > 0).float().sum(-1)
    return {
        "greedy_acts_per_turn": acts.mean().item(),
        "empty_greedy_rate": (acts == 0).float().mean().item(),
        "entropy": bernoulli_entropy(logits).mean().item(),
    }


def reward_parts(f: torch.Tensor, log_probs: torch.Tensor, logpi_coef: float) -> dict[str, float]:
    """Mean f and -c log pi, and the share of |r| that the log pi term makes up."""
    entropy_term = -logpi_coef * log_probs
    size_f, size_entropy = f.abs().mean().item(), entropy_term.abs().mean().item()
    total = size_f + size_entropy
    return {
        "reward_f_mean": f.mean().item(),
        "reward_logpi_term_mean": entropy_term.mean().item(),
        "reward_logpi_share": size_entropy / total if total else float("nan"),
    }
