"""What the ACER and GP-MBCM baselines share: summary actions and the run folder's bookkeeping.

Summary actions are the K most frequent act combinations (whole 209-act multi-hot vectors) of the expert
corpus, most frequent first, like the summary actions of Weisz et al. (2018) and Gasic et al. (2015) but read
off the data instead of written by hand. Choosing summary action k means sending ``vectors[k]`` to the
environment, which lexicalises it from the database like any other 209-act action. A corpus turn whose
combination is not among the K is mapped to the most similar one (Jaccard overlap of the act sets, ties to the
more frequent) when a summary label is needed for warm-starting.
"""

from __future__ import annotations

import json
import logging
from collections import Counter
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch

from vrb.config import TrainConfig

logger = logging.getLogger(__name__)


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


def start_run_folder(cfg: TrainConfig, out: Path) -> None:
    out.mkdir(parents=True, exist_ok=True)
    (out / "config.json").write_text(json.dumps(cfg.to_dict(), indent=1))
