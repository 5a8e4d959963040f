"""Where trained simulators live, and writing / reading their checkpoints.

A trained model is cached at ``<cache>/vhus/<key>/model.pt`` where ``<cache>`` is ``$VRB_CACHE_DIR``, else
``$XDG_CACHE_HOME/vrb`` (``~/.cache/vrb``), and ``<key>`` digests the checkpoint format, the variant and the
checksums of the data files the model is trained from, so a changed data folder never loads a stale model.
"""

from __future__ import annotations

import hashlib
import json
import logging
import os
from pathlib import Path
from typing import Any

import torch

from envs.fileio import atomic_writer
from envs.multiwoz.data import MultiWozData, read_checksums, sha256_of, user_cache_dir
from envs.vhus.model import VHUS, VHUSConfig

logger = logging.getLogger(__name__)

CACHE_ENV_VAR = "VRB_CACHE_DIR"
CHECKPOINT_FORMAT = 1
MODEL_FILE = "model.pt"


def cache_root() -> Path:
    explicit = os.environ.get(CACHE_ENV_VAR)
    return (Path(explicit) if explicit else user_cache_dir()) / "vhus"


def cache_key(data: MultiWozData, goal_regularizer: bool = False) -> str:
    """Digest of the format, the variant and the checksums of the vocabulary and corpus splits used."""
    checksums = read_checksums(data.root)
    names = ["vhus_vocab.json", f"{data.training_split()}.json.zip", "test.json.zip"]
    files = {name: checksums.get(name) or sha256_of(data.path(name)) for name in names}
    payload = json.dumps(
        {"format": CHECKPOINT_FORMAT, "goal_regularizer": goal_regularizer, "files": files}, sort_keys=True
    )
    return hashlib.sha256(payload.encode()).hexdigest()[:20]


def model_path(data: MultiWozData, goal_regularizer: bool = False) -> Path:
    return cache_root() / cache_key(data, goal_regularizer) / MODEL_FILE


def save_checkpoint(path: Path, model: VHUS, extra: dict[str, Any]) -> None:
    """Write whole or not at all (``envs.fileio.atomic_writer``)."""
    with atomic_writer(path, "wb") as f:
        torch.save(
            {
                "format": CHECKPOINT_FORMAT,
                "config": model.config.to_dict(),
                "state_dict": model.state_dict(),
                **extra,
            },
            f,
        )


def load_checkpoint(path: Path) -> tuple[VHUS, dict[str, Any]]:
    """(the model in eval mode, the checkpoint's other entries); ValueError if it is not a VHUS checkpoint."""
    checkpoint = torch.load(path, map_location="cpu", weights_only=True)
    if not isinstance(checkpoint, dict) or checkpoint.get("format") != CHECKPOINT_FORMAT:
        raise ValueError(
            f"{path}: not a VHUS checkpoint of format {CHECKPOINT_FORMAT}; retrain it "
            "with `python -m envs.vhus.train`"
        )
    model = VHUS(VHUSConfig(**checkpoint["config"]))
    model.load_state_dict(checkpoint["state_dict"])
    model.eval()
    extra = {k: v for k, v in checkpoint.items() if k not in ("format", "config", "state_dict")}
    return model, extra
