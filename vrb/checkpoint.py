"""Atomic, self-checking checkpoints that carry everything needed to resume a run bit-for-bit.

File layout: one header line ``VRBCKPT <format> <sha256 of payload>\\n`` followed by a ``torch.save`` payload.
The digest turns any truncation or damaged byte into a clear error instead of silently wrong weights; the
payload holds only tensors and plain Python values, so it is read with ``weights_only=True``. A floating-point
tensor holding NaN or an infinity is refused at load, naming the tensor (no run writes one: such weights would
only be evaluated or trained on as if they were weights); ``load_weights`` puts one network's weights into a
module, refusing an entry that is missing or of another type or shape in one line.
"""

from __future__ import annotations

import functools
import hashlib
import io
import logging
import os
import pickle
import random
import subprocess
import tomllib
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from importlib import metadata
from pathlib import Path
from typing import Any

import numpy as np
import torch

from envs.fileio import atomic_write_bytes, refused_global
from vrb.config import TrainConfig
from vrb.errors import VrbError

logger = logging.getLogger(__name__)

FORMAT_VERSION = 1
MAGIC = b"VRBCKPT"
REPO_ROOT = Path(__file__).resolve().parents[1]
REQUIRED_FIELDS = ("config", "epoch", "state", "rng_states", "data_checksums", "code_version")

Rng = random.Random | np.random.RandomState | np.random.Generator | torch.Generator


class CheckpointError(VrbError):
    """A checkpoint is missing, corrupt or from an incompatible version; the message says which."""


@dataclass(frozen=True)
class Checkpoint:
    config: dict[str, Any]
    epoch: int
    state: dict[str, Any]  # name -> state_dict (networks, optimisers, estimator with phi, samplers)
    rng_states: dict[str, Any]
    data_checksums: dict[str, str]
    code_version: dict[str, str]
    path: Path


SOURCE_PACKAGES = ("envs", "vrb", "baselines", "experiments")


def source_digest(root: Path = REPO_ROOT) -> str:
    """A digest of the project's Python sources: names the code that ran where git metadata is absent or stale
    (a copied tree, an install)."""
    digest = hashlib.sha256()
    for package in SOURCE_PACKAGES:
        for path in sorted((root / package).rglob("*.py")):
            digest.update(path.relative_to(root).as_posix().encode() + b"\0" + path.read_bytes())
    return digest.hexdigest()[:16]


@functools.cache
def code_version() -> dict[str, str]:
    """Package version, ``git describe`` of the source tree when it is a git checkout, and the sources' digest."""
    try:
        package = metadata.version("vrb")
    except metadata.PackageNotFoundError:
        with open(REPO_ROOT / "pyproject.toml", "rb") as f:
            package = tomllib.load(f)["project"]["version"]
    try:
        git = subprocess.run(
            ["git", "-C", str(REPO_ROOT), "describe", "--always", "--dirty", "--tags"],
            capture_output=True,
            text=True,
            timeout=10,
            check=True,
        ).stdout.strip()
    except (OSError, subprocess.SubprocessError):
        git = ""
    return {"package": package, "git": git, "source": source_digest()}


def capture_rng_states(rngs: Mapping[str, Rng]) -> dict[str, Any]:
    """Serialisable states of named generators, plus torch's global CPU generator (weight initialisation)."""
    states: dict[str, Any] = {"torch_global": {"kind": "torch", "state": torch.get_rng_state()}}
    for name, rng in rngs.items():
        if isinstance(rng, random.Random):
            states[name] = {"kind": "python", "state": rng.getstate()}
        elif isinstance(rng, np.random.RandomState):
            legacy = rng.get_state(legacy=False)
            legacy["state"] = {"key": legacy["state"]["key"].tolist(), "pos": legacy["state"]["pos"]}
            states[name] = {"kind": "numpy_legacy", "state": legacy}
        elif isinstance(rng, np.random.Generator):
            states[name] = {"kind": "numpy", "state": rng.bit_generator.state}
        elif isinstance(rng, torch.Generator):
            states[name] = {"kind": "torch", "state": rng.get_state()}
        else:
            raise TypeError(
                f"rng {name!r} is a {type(rng).__name__}; expected random.Random, numpy or torch generator"
            )
    return states


def restore_rng_states(rngs: Mapping[str, Rng], states: Mapping[str, Any]) -> None:
    """Move every named generator (and torch's global one) back to its saved position."""
    torch.set_rng_state(states["torch_global"]["state"])
    for name, rng in rngs.items():
        if name not in states:
            raise CheckpointError(f"checkpoint has no state for rng {name!r}; it saved {sorted(states)}")
        kind, state = states[name]["kind"], states[name]["state"]
        if isinstance(rng, random.Random) and kind == "python":
            rng.setstate(_as_tuples(state))
        elif isinstance(rng, np.random.RandomState) and kind == "numpy_legacy":
            inner = {"key": np.asarray(state["state"]["key"], dtype=np.uint32), "pos": state["state"]["pos"]}
            rng.set_state({**state, "state": inner})
        elif isinstance(rng, np.random.Generator) and kind == "numpy":
            rng.bit_generator.state = state
        elif isinstance(rng, torch.Generator) and kind == "torch":
            rng.set_state(state)
        else:
            raise CheckpointError(
                f"rng {name!r} is a {type(rng).__name__} but the checkpoint saved a {kind} state"
            )


def _as_tuples(value: Any) -> Any:
    """random.Random.setstate needs tuples; a round trip may hand back lists."""
    return tuple(_as_tuples(v) for v in value) if isinstance(value, list | tuple) else value


def save_checkpoint(
    path: str | os.PathLike,
    *,
    config: TrainConfig,
    epoch: int,
    state: Mapping[str, Any],
    rngs: Mapping[str, Rng] | None = None,
    data_checksums: Mapping[str, str] | None = None,
) -> Path:
    """Write atomically: a crash leaves either the old file or the new one, never half of one; a write that
    fails (a full disk) is a CheckpointError naming the file."""
    payload = {
        "config": config.to_dict(),
        "epoch": epoch,
        "state": dict(state),
        "rng_states": capture_rng_states(rngs or {}),
        "data_checksums": dict(data_checksums or {}),
        "code_version": code_version(),
    }
    return _write(Path(path), payload)


def save_policy_only(checkpoint: Checkpoint, path: str | os.PathLike) -> Path:
    """A checkpoint holding only what acting needs — the policy's weights, with the run's config, epoch, data
    checksums and the version of the code that trained it — small enough to ship (``pretrained/``). The run's
    folders are left out of the config: they name places on the machine that trained it."""
    payload = {
        "config": {**checkpoint.config, "out_dir": None, "data_dir": None},
        "epoch": checkpoint.epoch,
        "state": {"policy": checkpoint.state["policy"]},
        "rng_states": checkpoint.rng_states,
        "data_checksums": checkpoint.data_checksums,
        "code_version": checkpoint.code_version,
    }
    return _write(Path(path), payload)


def _write(path: Path, payload: dict[str, Any]) -> Path:
    buffer = io.BytesIO()
    torch.save(payload, buffer)
    body = buffer.getvalue()
    header = b"%s %d %s\n" % (MAGIC, FORMAT_VERSION, hashlib.sha256(body).hexdigest().encode())
    try:
        atomic_write_bytes(path, header + body)
    except OSError as exc:  # a full disk, a read-only folder: the old file (if any) stays whole
        raise CheckpointError(f"checkpoint {path} could not be written ({exc.strerror or exc})") from exc
    return path


def _one_line(exc: BaseException) -> str:
    text = " ".join(str(exc).split())
    return f"{type(exc).__name__}: {text[:300]}"


def _mapping_of(value: Any, keys: type, values: type | tuple[type, ...] | None = None) -> bool:
    return isinstance(value, dict) and all(
        isinstance(k, keys) and (values is None or isinstance(v, values)) for k, v in value.items()
    )


def _check_fields(path: Path, payload: Any) -> None:
    """The payload's fields have the types ``save_checkpoint`` writes; else a CheckpointError naming the field."""
    if not isinstance(payload, dict):
        raise CheckpointError(f"checkpoint {path} holds a {type(payload).__name__}, not a vrb checkpoint")
    missing = [name for name in REQUIRED_FIELDS if name not in payload]
    if missing:
        raise CheckpointError(f"checkpoint {path} lacks {missing}; it was not written by vrb.checkpoint")
    epoch, rng = payload["epoch"], payload["rng_states"]
    expected = {
        "config": (_mapping_of(payload["config"], str), "a mapping of config fields"),
        "epoch": (isinstance(epoch, int) and not isinstance(epoch, bool) and epoch >= -1, "an integer >= -1"),
        "state": (_mapping_of(payload["state"], str), "a mapping of named states"),
        "rng_states": (
            _mapping_of(rng, str, dict)
            and "torch_global" in rng
            and all({"kind", "state"} <= set(entry) for entry in rng.values()),
            "generator states, torch's global one among them",
        ),
        "data_checksums": (_mapping_of(payload["data_checksums"], str, str), "file -> sha256"),
        "code_version": (_mapping_of(payload["code_version"], str, str), "a mapping of version strings"),
    }
    for name, (ok, what) in expected.items():
        if not ok:
            raise CheckpointError(
                f"checkpoint {path}: field {name!r} = {_short(payload[name])} is not {what}; "
                "it was not written by vrb.checkpoint"
            )


def _short(value: Any) -> str:
    text = repr(value)
    return text if len(text) <= 60 else f"{text[:57]}..."


def load_checkpoint(path: str | os.PathLike, map_location: str | torch.device = "cpu") -> Checkpoint:
    path = Path(path)
    if not path.is_file():
        raise CheckpointError(f"checkpoint {path} does not exist")
    try:
        with open(path, "rb") as f:
            header, body = f.readline(), f.read()
    except OSError as exc:
        raise CheckpointError(f"checkpoint {path} is unreadable ({exc.strerror or exc})") from None
    parts = header.split()
    if len(parts) != 3 or parts[0] != MAGIC or not parts[1].isdigit():
        raise CheckpointError(f"{path} is not a vrb checkpoint (bad header)")
    if int(parts[1]) != FORMAT_VERSION:
        raise CheckpointError(
            f"checkpoint {path} uses format {int(parts[1])}; "
            f"this vrb ({code_version()['package']}) reads format {FORMAT_VERSION}"
        )
    if hashlib.sha256(body).hexdigest().encode() != parts[2]:
        raise CheckpointError(f"checkpoint {path} is corrupt (sha256 mismatch: truncated or damaged)")
    try:
        payload = torch.load(io.BytesIO(body), map_location=map_location, weights_only=True)
    except pickle.UnpicklingError as exc:
        found = refused_global(exc)
        if found is None:
            raise CheckpointError(f"checkpoint {path} payload is unreadable ({_one_line(exc)})") from None
        raise CheckpointError(  # not torch's message: it explains how to load the file anyway
            f"checkpoint {path} holds pickled objects other than tensors and plain values"
            f"{f' ({found})' if found else ''}; a vrb checkpoint never does: it was not written by "
            "vrb.checkpoint or was tampered with, and is refused unread"
        ) from None
    except Exception as exc:  # torch raises many types for a bad payload
        raise CheckpointError(f"checkpoint {path} payload is unreadable ({_one_line(exc)})") from exc
    _check_fields(path, payload)
    bad = _non_finite(payload["state"])
    if bad is not None:
        raise CheckpointError(
            f"checkpoint {path}: tensor {bad} holds NaN or infinite values; weights must be finite (the run "
            "that wrote it diverged, or the file was altered)"
        )
    saved_version = payload["code_version"].get("package")
    if saved_version != code_version()["package"]:
        logger.warning(
            "checkpoint %s was written by vrb %s, this is vrb %s",
            path,
            saved_version,
            code_version()["package"],
        )
    return Checkpoint(path=path, **{name: payload[name] for name in REQUIRED_FIELDS})


def _non_finite(value: Any, name: str = "") -> str | None:
    """The name (``entry.key...``) of the first floating-point tensor in ``value`` with a NaN or an infinity."""
    if isinstance(value, torch.Tensor):
        floating = value.is_floating_point() or value.is_complex()
        return name if floating and not bool(torch.isfinite(value).all()) else None
    items: Iterable[tuple[Any, Any]]
    if isinstance(value, Mapping):
        items = value.items()
    elif isinstance(value, list | tuple):
        items = enumerate(value)
    else:
        return None
    for key, item in items:
        found = _non_finite(item, f"{name}.{key}" if name else str(key))
        if found is not None:
            return found
    return None


def _describe(value: Any) -> str:
    if isinstance(value, torch.Tensor):
        return f"a {str(value.dtype).removeprefix('torch.')} tensor of shape {tuple(value.shape)}"
    return f"a {type(value).__name__}"


def load_weights(module: torch.nn.Module, checkpoint: Checkpoint, entry: str, network: str) -> None:
    """Load ``checkpoint.state[entry]`` into ``module`` (``network`` says what it is, e.g. "a policy of
    policy_hidden [100, 100]"). A missing entry, a missing or unexpected tensor, or one of another type or shape
    is a CheckpointError naming the file and the tensor."""
    where = f"checkpoint {checkpoint.path}"
    weights = checkpoint.state.get(entry)
    if weights is None:
        raise CheckpointError(
            f"{where} holds no {entry!r} weights (its state has {sorted(checkpoint.state)[:8]})"
        )
    if not isinstance(weights, Mapping):
        raise CheckpointError(
            f"{where}: its {entry!r} entry is {_describe(weights)}, not a mapping of tensors"
        )
    expected = module.state_dict()
    missing, extra = sorted(set(expected) - set(weights)), sorted(set(weights) - set(expected), key=str)
    if missing or extra:
        raise CheckpointError(
            f"{where}: its {entry!r} weights do not fit {network}"
            f"{f' (missing {missing[:3]})' if missing else ''}{f' (unexpected {extra[:3]})' if extra else ''}"
        )
    for name, want in expected.items():
        got = weights[name]
        fits = (
            isinstance(got, torch.Tensor)
            and got.shape == want.shape
            and got.is_floating_point() == want.is_floating_point()
        )
        if not fits:
            raise CheckpointError(
                f"{where}: its {entry!r} tensor {name} is {_describe(got)}; {network} needs {_describe(want)}"
            )
    module.load_state_dict(weights)
