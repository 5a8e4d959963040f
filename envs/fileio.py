"""Files written whole or not at all, and values made JSON-ready: one implementation for the whole project.

A file is written to a temporary file in its own folder, flushed to disk, then renamed over the target, so a
reader (or a run resumed after ``kill -9``) sees the old file or the new one, never half of one. The new file
gets the permissions ``open(path, "w")`` would give it (0666 less the umask), not ``tempfile.mkstemp``'s 0600.
The module lives on the ground floor (``envs``) because every floor above writes files.
"""

from __future__ import annotations

import dataclasses
import json
import math
import os
import secrets
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import IO, Any

import numpy as np

# Flags of ``tempfile.mkstemp``'s file, which is always created 0600; ours is created 0666 less the umask.
_TEMP_FLAGS = (
    os.O_RDWR
    | os.O_CREAT
    | os.O_EXCL
    | getattr(os, "O_NOFOLLOW", 0)
    | getattr(os, "O_CLOEXEC", 0)
    | getattr(os, "O_BINARY", 0)
)


def _create_temp(path: Path) -> tuple[int, Path]:
    """A new, empty file beside ``path``, with a name no other writer has: (its descriptor, its path)."""
    while True:
        tmp = path.with_name(f".{path.name}.{secrets.token_hex(4)}.tmp")
        try:
            return os.open(tmp, _TEMP_FLAGS, 0o666), tmp
        except FileExistsError:
            continue


@contextmanager
def atomic_writer(path: str | os.PathLike, mode: str = "wb") -> Iterator[IO]:
    """An open temporary file that replaces ``path`` when the block ends without an exception."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = _create_temp(path)
    try:
        with os.fdopen(fd, mode) as f:
            yield f
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise


def _read_umask() -> int:
    mask = os.umask(0)
    os.umask(mask)
    return mask


_UMASK = _read_umask()  # read once: os.umask can only be read by setting it


def atomic_write_bytes(path: str | os.PathLike, data: bytes) -> None:
    with atomic_writer(path, "wb") as f:
        f.write(data)


def atomic_write_text(path: str | os.PathLike, text: str) -> None:
    with atomic_writer(path, "w") as f:
        f.write(text)


def to_jsonable(value: Any) -> Any:
    """``json.dumps``'s ``default``: numpy scalars and arrays, tuples, paths and dataclasses become plain values."""
    if isinstance(value, np.generic):
        return value.item()
    if isinstance(value, np.ndarray):
        return value.tolist()
    if isinstance(value, tuple | set | frozenset):
        return list(value)
    if isinstance(value, os.PathLike):
        return os.fspath(value)
    if dataclasses.is_dataclass(value) and not isinstance(value, type):
        return dataclasses.asdict(value)
    raise TypeError(f"cannot write {type(value).__name__} as JSON")


def _finite(value: Any) -> Any:
    """NaN and infinities (not JSON) become null, in nested dicts and lists."""
    if isinstance(value, float) and not math.isfinite(value):
        return None
    if isinstance(value, dict):
        return {k: _finite(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [_finite(v) for v in value]
    return value


def dumps_json(value: Any, indent: int | None = 1) -> str:
    """Standard JSON (NaN and infinities written as null), with the project's conversions."""
    return json.dumps(_finite(value), indent=indent, default=to_jsonable, allow_nan=False)


def write_json(path: str | os.PathLike, value: Any, indent: int | None = 1) -> None:
    atomic_write_text(path, dumps_json(value, indent) + "\n")
