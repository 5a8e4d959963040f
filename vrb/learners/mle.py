"""``mle``: behaviour cloning of the multi-label policy (ConvLab-2's MLE policy), the row of its own and the
warm start of every learner of that policy (``ppo``, ``gdpl``, ``vrb``, the ALDM baseline).

Loss: binary cross-entropy per act (``mle_pos_weight`` on an act's presence; ConvLab-2's 5 inflates every act),
RMSprop with weight decay, on the training split's (state, action) pairs. A tenth of its dialogues is held out:
after each epoch it is scored by micro precision/recall/F1 of the greedy action (p > 0.5), and the weights with
the lowest held-out loss are kept, as ConvLab-2 kept 'best'. Act scores on the test split are reported, never
trained on. With ``clone_cache`` the start of an identical earlier cloning is reused (``vrb.clone_cache``).
"""

from __future__ import annotations

import copy
import logging
from dataclasses import dataclass
from typing import Any, cast

import numpy as np
import torch
from torch import nn

from envs.multiwoz.vector import ACTION_DIM, STATE_DIM
from vrb.acting import NeuralAgent
from vrb.checkpoint import Checkpoint, load_checkpoint, load_weights
from vrb.clone_cache import Entry, Records, code_digest, entry_for, reuse_or_clone
from vrb.config import TrainConfig
from vrb.expert import ExpertData
from vrb.learners import CloningOptions, MLEOptions
from vrb.loop import Panels, RunContext
from vrb.policy import MultiLabelPolicy, mlp
from vrb.rollout import shuffled_indices

logger = logging.getLogger(__name__)

MLE_HOLDOUT_FRACTION = 0.1  # of the training split's dialogues, for choosing the MLE epoch
# What the multi-label cloning reads of its options: every cloning field but the start's source and the cache
# switch (a field added to CloningOptions is keyed until it is named here).
CLONING_FIELDS = tuple(
    name for name in CloningOptions.field_names() if name not in ("pretrained_policy", "clone_cache")
)


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


def clone_behaviour(policy: MultiLabelPolicy, ctx: RunContext, options: CloningOptions) -> dict[str, float]:
    """MLE on the training split (a dialogue-level hold-out picks the epoch); act scores on the test split. With
    ``clone_cache`` the start of an identical earlier cloning is reused (``vrb.clone_cache``): the same weights,
    generator, ``mle`` scalars and result as cloning here."""

    def clone() -> tuple[Records, dict[str, float]]:
        return _clone(policy, ctx.expert, ctx.test, options, ctx.generator)

    entry = clone_entry(policy, ctx, options) if options.clone_cache else None
    start = reuse_or_clone(entry, policy, ctx.generator, clone)
    for step, scalars in start.records[:-1]:  # the last record is the test scores: results.json, not a chart
        ctx.tb.scalars("mle", scalars, step)
    logger.info(
        "MLE on %s: test act precision %.3f recall %.3f F1 %.3f", ctx.expert.split, *start.result.values()
    )
    return start.result


def clone_entry(policy: MultiLabelPolicy, ctx: RunContext, options: CloningOptions) -> Entry:
    """The clone-cache entry of this run's multi-label cloning, as the policy and generator are now."""
    fields = {name: getattr(options, name) for name in CLONING_FIELDS}
    code = code_digest(
        _clone,
        behaviour_cloning_from_options,
        behaviour_cloning,
        act_scores,
        MultiLabelPolicy,
        mlp,
        shuffled_indices,
    )
    return entry_for("multilabel", ctx.cfg, ctx.data, ctx.expert.split, fields, code, policy, ctx.generator)


def _clone(
    policy: MultiLabelPolicy,
    expert: ExpertData,
    test: ExpertData,
    options: CloningOptions,
    generator: torch.Generator,
) -> tuple[Records, dict[str, float]]:
    """The cloning itself: the ``mle`` panel's records (one per epoch, then the test scores) and the result."""
    holdout = np.asarray(expert.dialogue_index) % round(1 / MLE_HOLDOUT_FRACTION) == 0
    history = behaviour_cloning_from_options(
        policy,
        expert.states[~holdout],
        expert.actions[~holdout],
        expert.states[holdout],
        expert.actions[holdout],
        options,
        generator,
    )
    records: Records = [(int(r["epoch"]), {k: v for k, v in r.items() if k != "epoch"}) for r in history]
    device = next(policy.parameters()).device
    with torch.no_grad():
        predicted = policy.greedy(torch.as_tensor(test.states, device=device))
        scores = act_scores(predicted, torch.as_tensor(test.actions, device=device))
    result = {"test_precision": scores.precision, "test_recall": scores.recall, "test_f1": scores.f1}
    return [*records, (len(history), result)], result


def warm_start(policy: MultiLabelPolicy, ctx: RunContext) -> dict[str, Any]:
    """The policy's start: weights from ``pretrained_policy``, else behaviour cloning (recorded as ``mle``)."""
    options: CloningOptions = ctx.cfg.options  # type: ignore[assignment]
    if options.pretrained_policy is not None:
        network = f"a policy of policy_hidden {list(options.policy_hidden)}"
        load_weights(policy, load_checkpoint(options.pretrained_policy), "policy", network)
        logger.info("policy starts from %s", options.pretrained_policy)
        return {"pretrained_policy": str(options.pretrained_policy)}
    return {"mle": clone_behaviour(policy, ctx, options)}


class ClonedPolicy:
    """``mle``: behaviour cloning of the multi-label policy, nothing after."""

    online = False

    def __init__(self, ctx: RunContext):
        cfg = ctx.cfg
        options = cast(MLEOptions, cfg.options)  # the algorithm's own options class (vrb.algorithms)
        self.ctx = ctx
        self.policy = MultiLabelPolicy(STATE_DIM, ACTION_DIM, options.policy_hidden).to(cfg.device)
        self.agent = NeuralAgent(self.policy, options.decoder, options.empty_fallback, cfg.seed)

    def start(self) -> dict[str, Any]:
        return warm_start(self.policy, self.ctx)

    def learn_epoch(self, epoch: int) -> Panels:
        raise RuntimeError("behaviour cloning has no learning epochs")

    def state_dict(self) -> dict[str, Any]:
        return {"policy": self.policy.state_dict()}

    def load_state_dict(self, state: dict[str, Any]) -> None:
        self.policy.load_state_dict(state["policy"])

    def close(self) -> None:
        pass


def load_agent(
    checkpoint: Checkpoint, cfg: TrainConfig, decoder: str | None, sample_seed: int
) -> NeuralAgent:
    """The multi-label policy a checkpoint holds, decoding as its run did unless ``decoder`` says otherwise
    (the agent loader of every algorithm that acts through ``MultiLabelPolicy``)."""
    options = cfg.options
    policy = MultiLabelPolicy(hidden_sizes=options.policy_hidden)  # type: ignore[attr-defined]
    load_weights(policy, checkpoint, "policy", f"a policy of policy_hidden {list(options.policy_hidden)}")  # type: ignore[attr-defined]
    return NeuralAgent(policy, decoder or options.decoder, options.empty_fallback, sample_seed)  # type: ignore[attr-defined]
