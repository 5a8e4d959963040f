"""Where trained simulators live, and writing / reading their checkpoints.

A trained model is cached at ``<cache>/vhus/<key>/model.pt`` where ``<cache>`` is ``$VRB_CACHE_DIR``, else
``$XDG_CACHE_HOME/vrb`` (``~/.cache/vrb``), and ``<key>`` digests the checkpoint format, the variant and the
checksums of the data files the model is trained from, so a changed data folder never loads a stale model.

Only a finished training writes the cache (``envs.vhus.train``: once, atomically, at the end), so a training
cut short leaves nothing there. A checkpoint carries a sha256 of its weights (``state_sha256``), checked on
every load. ``model_path`` returns the cache path of a model only after checking the file there: one that does
not load, fails its digest or is a best-so-far model written by a cut-short training before this rule (it lacks
the final ``test`` scores and a digest) is moved aside to ``model.pt.corrupt`` with a warning, so the next user
trains it again instead of crashing or using it. Trainings of one cache entry take ``train.lock`` beside it.
"""

from __future__ import annotations

import hashlib
import json
import logging
import os
import pickle
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import torch

from envs.fileio import atomic_writer, hold_lock, refused_global
from envs.multiwoz.data import DataError, MultiWozData, read_checksums, sha256_of, user_cache_dir
from envs.vhus.model import VHUS, VHUSConfig

logger = logging.getLogger(__name__)

CACHE_ENV_VAR = "VRB_CACHE_DIR"
CHECKPOINT_FORMAT = 1
MODEL_FILE = "model.pt"
LOCK_FILE = "train.lock"  # held while a model of this cache entry is trained or found unusable
CORRUPT_SUFFIX = ".corrupt"
_HEADER_KEYS = ("format", "config", "state_dict", "state_sha256")


class CacheError(DataError):
    """A VHUS checkpoint that cannot be used (unreadable, corrupt, not a VHUS checkpoint); names the file."""


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
    """Where the trained model for this data folder and variant is cached. A file there that is unusable is
    moved aside first (module docstring), so that the path holds a usable model or nothing."""
    path = cache_root() / cache_key(data, goal_regularizer) / MODEL_FILE
    if path.is_file():
        discard_if_unusable(path)
    return path


@contextmanager
def training_lock(path: Path) -> Iterator[None]:
    """Hold ``train.lock`` beside ``path`` (waiting for a training in another process to finish)."""
    path.parent.mkdir(parents=True, exist_ok=True)

    def say(holder: str) -> None:
        logger.info("VHUS: %s is being trained by %s; waiting for it", path, holder or "another process")

    with hold_lock(path.parent / LOCK_FILE, wait=True, on_wait=say):
        yield


def state_digest(state_dict: Mapping[str, torch.Tensor]) -> str:
    """sha256 over the names, dtypes, shapes and bytes of a state dict's tensors, in order."""
    digest = hashlib.sha256()
    for name, tensor in state_dict.items():
        flat = tensor.detach().cpu().contiguous().reshape(-1)
        digest.update(f"{name}\0{flat.dtype}\0{tuple(tensor.shape)}\0".encode())
        digest.update(flat.view(torch.uint8).numpy().tobytes())
    return digest.hexdigest()


def save_checkpoint(path: Path, model: VHUS, extra: dict[str, Any]) -> None:
    """Write whole or not at all (``envs.fileio.atomic_writer``), with the digest of the weights."""
    state = model.state_dict()
    with atomic_writer(path, "wb") as f:
        torch.save(
            {
                "format": CHECKPOINT_FORMAT,
                "config": model.config.to_dict(),
                "state_dict": state,
                "state_sha256": state_digest(state),
                **extra,
            },
            f,
        )


def _one_line(exc: BaseException) -> str:
    return f"{type(exc).__name__}: {' '.join(str(exc).split())[:200]}"


def load_checkpoint(path: Path) -> tuple[VHUS, dict[str, Any]]:
    """(the model in eval mode, the checkpoint's other entries); CacheError, naming the file, when it is not a
    usable VHUS checkpoint of this format."""
    model, checkpoint = _load(path)
    return model, {k: v for k, v in checkpoint.items() if k not in _HEADER_KEYS}


def _load(path: Path) -> tuple[VHUS, dict[str, Any]]:
    retrain = "delete it (the cache trains it again) or retrain it with `python -m envs.vhus.train`"
    try:
        checkpoint = torch.load(path, map_location="cpu", weights_only=True)
    except pickle.UnpicklingError as exc:
        found = refused_global(exc)
        if found is None:
            raise CacheError(f"VHUS checkpoint {path} is unreadable ({_one_line(exc)}); {retrain}") from None
        raise CacheError(  # not torch's message: it advises loading the file unsafely
            f"VHUS checkpoint {path} holds pickled objects other than tensors and plain values"
            f"{f' ({found})' if found else ''}; refused unread; {retrain}"
        ) from None
    except Exception as exc:  # torch raises many types for a truncated or damaged file
        raise CacheError(f"VHUS checkpoint {path} is unreadable ({_one_line(exc)}); {retrain}") from None
    if (
        not isinstance(checkpoint, dict)
        or checkpoint.get("format") != CHECKPOINT_FORMAT
        or not isinstance(checkpoint.get("config"), dict)
        or not isinstance(checkpoint.get("state_dict"), dict)
    ):
        raise CacheError(f"{path}: not a VHUS checkpoint of format {CHECKPOINT_FORMAT}; {retrain}")
    expected = checkpoint.get("state_sha256")
    if expected is not None and state_digest(checkpoint["state_dict"]) != expected:
        raise CacheError(f"VHUS checkpoint {path} is corrupt (weights sha256 mismatch); {retrain}")
    try:
        model = VHUS(VHUSConfig(**checkpoint["config"]))
        model.load_state_dict(checkpoint["state_dict"])
    except (TypeError, ValueError, RuntimeError) as exc:
        raise CacheError(
            f"VHUS checkpoint {path} does not fit its config ({_one_line(exc)}); {retrain}"
        ) from None
    model.eval()
    return model, checkpoint


def unusable(path: Path) -> str | None:
    """Why the cached model at ``path`` must not be used, or None when it may."""
    try:
        _, checkpoint = _load(path)
    except CacheError as exc:
        return str(exc)
    if "state_sha256" not in checkpoint and "test" not in checkpoint:
        return "a best-so-far model of a training that was cut short (no final test scores)"
    return None


_checked: set[tuple] = (
    set()
)  # (path, device, inode, size, mtime) of cached files found usable by this process


def discard_if_unusable(path: Path) -> None:
    """Move an unusable cached model aside (to ``model.pt.corrupt``) so that it is trained again; a training of
    it in another process is waited for first. Files found usable are remembered for the process's life."""
    try:
        stat = path.stat()
    except FileNotFoundError:
        return
    identity = (str(path), stat.st_dev, stat.st_ino, stat.st_size, stat.st_mtime_ns)
    if identity in _checked:
        return
    if unusable(path) is None:
        _checked.add(identity)
        return
    with training_lock(path):  # another process may be replacing it right now
        reason = unusable(path) if path.is_file() else None
        if reason is not None:
            aside = path.with_name(MODEL_FILE + CORRUPT_SUFFIX)
            os.replace(path, aside)
            logger.warning("VHUS: the cached model %s is unusable (%s); moved it to %s", path, reason, aside)
