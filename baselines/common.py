"""What the ACER and GP-MBCM baselines share: summary actions, a softmax policy over them and its cloning.

Summary actions are the K most frequent act combinations (whole 209-act multi-hot vectors) of the expert
corpus, most frequent first, like the summary actions of Weisz et al. (2018) and Gasic et al. (2015) but read
off the data instead of written by hand. Choosing summary action k means sending ``vectors[k]`` to the
environment, which lexicalises it from the database like any other 209-act action. A corpus turn whose
combination is not among the K is mapped to the most similar one (Jaccard overlap of the act sets, ties to the
more frequent) when a summary label is needed for warm-starting.
"""

from __future__ import annotations

import copy
from collections import Counter
from dataclasses import dataclass

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from envs.multiwoz.vector import STATE_DIM
from vrb.clone_cache import Records
from vrb.expert import ExpertData
from vrb.learners.mle import MLE_HOLDOUT_FRACTION
from vrb.policy import draw_device, mlp
from vrb.rollout import shuffled_indices


@dataclass(frozen=True)
class SummaryActions:
    vectors: np.ndarray  # [K, 209] float32 multi-hot, most frequent first
    coverage: float  # fraction of the corpus turns whose combination is one of the K

    def __len__(self) -> int:
        return self.vectors.shape[0]

    @classmethod
    def from_corpus(cls, actions: np.ndarray, k: int) -> SummaryActions:
        """The ``k`` most frequent rows of ``actions`` ([N, 209] 0/1); ties keep corpus order."""
        rows = np.ascontiguousarray(actions.astype(np.uint8))
        counts = Counter(row.tobytes() for row in rows)
        if k > len(counts):
            raise ValueError(
                f"{k} summary actions requested; the corpus has only {len(counts)} distinct act sets"
            )
        chosen = counts.most_common(k)
        vectors = np.stack([np.frombuffer(key, dtype=np.uint8) for key, _ in chosen]).astype(np.float32)
        return cls(vectors, sum(n for _, n in chosen) / len(rows))

    def nearest(self, actions: np.ndarray) -> np.ndarray:
        """Index of the most similar summary action (Jaccard of act sets; empty vs empty counts as 1)."""
        actions = np.asarray(actions, dtype=np.float32)
        overlap = actions @ self.vectors.T
        union = actions.sum(1, keepdims=True) + self.vectors.sum(1) - overlap
        similarity = np.where(union > 0, overlap / np.maximum(union, 1), 1.0)
        return similarity.argmax(1)

    def index_of(self, actions: torch.Tensor) -> torch.Tensor:
        """Index of each multi-hot row, which must be exactly one of the summary actions."""
        vectors = torch.as_tensor(self.vectors, device=actions.device)
        overlap = actions @ vectors.T
        exact = (overlap == vectors.sum(1)) & (overlap == actions.sum(-1, keepdim=True))
        if not exact.any(-1).all():
            raise ValueError(
                "an action is not one of the summary actions (was it sampled by another policy?)"
            )
        return exact.float().argmax(-1)


def request_answers(user_act_vocab: list[str], sys_act_vocab: list[str]) -> np.ndarray:
    """Per user act: the system act answering it if it is a request (D-Request-S-? -> D-Inform-S-1), or -1."""
    sys_index = {act: i for i, act in enumerate(sys_act_vocab)}
    answers = []
    for act in user_act_vocab:
        domain, intent, slot = act.split("-")[:3]
        answers.append(sys_index.get(f"{domain}-Inform-{slot}-1", -1) if intent == "Request" else -1)
    return np.array(answers, dtype=np.int64)


class SummaryPolicy(nn.Module):
    """Softmax over summary actions that acts with their 209-act vectors, so vrb's sampling and NeuralAgent
    drive it like a MultiLabelPolicy (``act`` decodes: ``greedy`` takes the most probable, any other decoder
    samples; ``greedy()`` is the most probable)."""

    def __init__(
        self,
        vectors: np.ndarray | torch.Tensor,
        state_dim: int = STATE_DIM,
        hidden_sizes: tuple[int, ...] = (100, 100),
    ):
        super().__init__()
        self.register_buffer("vectors", torch.as_tensor(vectors, dtype=torch.float32))
        self.net = mlp([state_dim, *hidden_sizes, self.vectors.shape[0]])

    def forward(self, states: torch.Tensor) -> torch.Tensor:
        """Logits over summary actions."""
        return self.net(states)

    @torch.no_grad()
    def act(
        self,
        states: torch.Tensor,
        generator: torch.Generator | None = None,
        decoder: str = "sample",
        fallback: bool = False,
    ) -> tuple[torch.Tensor, torch.Tensor]:
        log_probs = torch.log_softmax(self(states), -1)
        if decoder == "greedy":
            index = log_probs.argmax(-1, keepdim=True)
        else:
            probs = log_probs.exp().to(draw_device(generator, log_probs.device))
            index = torch.multinomial(probs, 1, generator=generator).to(log_probs.device)
        return self.vectors[index.squeeze(-1)], log_probs.gather(-1, index).squeeze(-1)

    @torch.no_grad()
    def greedy(self, states: torch.Tensor) -> torch.Tensor:
        return self.vectors[self(states).argmax(-1)]


def clone_summary_behaviour(
    policy: SummaryPolicy,
    expert: ExpertData,
    summary: SummaryActions,
    gen: torch.Generator,
    *,
    epochs: int,
    lr: float,
    weight_decay: float,
    batch_size: int,
) -> tuple[Records, dict[str, float]]:
    """Cross-entropy on corpus turns labelled with their nearest summary action; a dialogue-level hold-out
    picks the epoch (as the multi-label MLE of vrb.learners.mle does). Returns the ``mle`` panel's records (one per
    epoch) and the result (``vrb.clone_cache.CloneFn``: the caller logs them, from the cache or not)."""
    device = policy.vectors.device
    labels = torch.as_tensor(summary.nearest(expert.actions), device=device)
    states = torch.as_tensor(expert.states, device=device)
    holdout = np.asarray(expert.dialogue_index) % round(1 / MLE_HOLDOUT_FRACTION) == 0
    holdout = torch.as_tensor(holdout, device=device)
    train_s, train_y, val_s, val_y = states[~holdout], labels[~holdout], states[holdout], labels[holdout]
    optimizer = torch.optim.RMSprop(policy.parameters(), lr=lr, weight_decay=weight_decay)
    best_loss, best_state, result = float("inf"), None, {}
    records: Records = []
    for epoch in range(epochs):
        for idx in shuffled_indices(len(train_s), gen, device).split(batch_size):
            loss = F.cross_entropy(policy(train_s[idx]), train_y[idx])
            optimizer.zero_grad(set_to_none=True)
            loss.backward()
            optimizer.step()
        with torch.no_grad():
            logits = policy(val_s)
            record = {
                "val_loss": F.cross_entropy(logits, val_y).item(),
                "val_accuracy": (logits.argmax(-1) == val_y).float().mean().item(),
            }
        records.append((epoch, record))
        if record["val_loss"] < best_loss:
            best_loss, best_state, result = record["val_loss"], copy.deepcopy(policy.state_dict()), record
    policy.load_state_dict(best_state)
    return records, result | {"summary_coverage": summary.coverage}
