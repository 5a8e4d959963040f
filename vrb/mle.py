"""Behaviour cloning of the multi-label policy on (state, action) arrays (ConvLab-2's MLE policy).

Loss: binary cross-entropy per act with positive weight 5 (acts are sparse: most of the 209 are off in any
turn), RMSprop with weight decay. After each epoch the held-out set is scored by micro precision/recall/F1 of
the greedy action (p > 0.5); the weights with the lowest held-out loss are kept, as ConvLab-2 kept 'best'.
"""

from __future__ import annotations

import copy
import logging
from dataclasses import dataclass

import numpy as np
import torch
from torch import nn

from vrb.config import CloningOptions
from vrb.policy import MultiLabelPolicy
from vrb.rollout import shuffled_indices

logger = logging.getLogger(__name__)


@dataclass(frozen=True)
class ActScores:
    precision: float
    recall: float
    f1: float


def act_scores(predicted: torch.Tensor, target: torch.Tensor) -> ActScores:
    """Micro-averaged over every (turn, act) cell of two multi-hot matrices; 0 where undefined."""
    predicted, target = predicted.bool(), target.bool()
    true_pos = (predicted & target).sum().item()
    pred_pos, real_pos = predicted.sum().item(), target.sum().item()
    precision = true_pos / pred_pos if pred_pos else 0.0
    recall = true_pos / real_pos if real_pos else 0.0
    f1 = 2 * precision * recall / (precision + recall) if precision + recall else 0.0
    return ActScores(precision, recall, f1)


def behaviour_cloning(
    policy: MultiLabelPolicy,
    train_states: np.ndarray | torch.Tensor,
    train_actions: np.ndarray | torch.Tensor,
    val_states: np.ndarray | torch.Tensor,
    val_actions: np.ndarray | torch.Tensor,
    *,
    epochs: int,
    lr: float,
    weight_decay: float,
    pos_weight: float,
    batch_size: int,
    generator: torch.Generator | None = None,
) -> list[dict[str, float]]:
    """Train ``policy`` in place; one dict per epoch: train_loss, val_loss, held-out precision/recall/f1."""
    device = next(policy.parameters()).device
    train_s, train_a, val_s, val_a = (
        torch.as_tensor(x, dtype=torch.float32, device=device)
        for x in (train_states, train_actions, val_states, val_actions)
    )
    for name, states, actions in (("train", train_s, train_a), ("held-out", val_s, val_a)):
        if len(states) == 0 or len(states) != len(actions):
            raise ValueError(
                f"{name} set has {len(states)} states and {len(actions)} actions; need equal, > 0"
            )

    criterion = nn.BCEWithLogitsLoss(pos_weight=torch.full((train_a.shape[1],), pos_weight, device=device))
    optimizer = torch.optim.RMSprop(policy.parameters(), lr=lr, weight_decay=weight_decay, foreach=True)
    history: list[dict[str, float]] = []
    best_loss, best_state = float("inf"), None
    for epoch in range(epochs):
        policy.train()
        total, batches = 0.0, 0
        for idx in shuffled_indices(len(train_s), generator, device).split(batch_size):
            loss = criterion(policy(train_s[idx]), train_a[idx])
            optimizer.zero_grad(set_to_none=True)
            loss.backward()
            optimizer.step()
            total, batches = total + loss.item(), batches + 1
        policy.eval()
        with torch.no_grad():
            logits = policy(val_s)
            val_loss = criterion(logits, val_a).item()
            scores = act_scores(logits > 0, val_a)
        record = {
            "epoch": epoch,
            "train_loss": total / batches,
            "val_loss": val_loss,
            "precision": scores.precision,
            "recall": scores.recall,
            "f1": scores.f1,
        }
        history.append(record)
        logger.info(
            "mle epoch %d: train loss %.4f, val loss %.4f, act F1 %.4f",
            epoch,
            record["train_loss"],
            val_loss,
            scores.f1,
        )
        if val_loss < best_loss:
            best_loss, best_state = val_loss, copy.deepcopy(policy.state_dict())
    if best_state is not None:
        policy.load_state_dict(best_state)
    return history


def behaviour_cloning_from_options(
    policy: MultiLabelPolicy,
    train_states: np.ndarray | torch.Tensor,
    train_actions: np.ndarray | torch.Tensor,
    val_states: np.ndarray | torch.Tensor,
    val_actions: np.ndarray | torch.Tensor,
    options: CloningOptions,
    generator: torch.Generator | None = None,
) -> list[dict[str, float]]:
    return behaviour_cloning(
        policy,
        train_states,
        train_actions,
        val_states,
        val_actions,
        epochs=options.mle_epochs,
        lr=options.mle_lr,
        weight_decay=options.mle_weight_decay,
        pos_weight=options.mle_pos_weight,
        batch_size=options.mle_batch_size,
        generator=generator,
    )
