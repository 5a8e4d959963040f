"""Files written whole or not at all, and values made JSON-ready: one implementation for the whole project.

A file is written to a temporary file in its own folder, flushed to disk, then renamed over the target, so a
reader (or a run resumed after ``kill -9``) sees the old file or the new one, never half of one. The new file
gets the permissions ``open(path, "w")`` would give it (0666 less the umask), not ``tempfile.mkstemp``'s 0600.
A writer holds an exclusive ``flock`` on its temporary file until the rename, so the next write of the same
target can tell a temporary file whose writer died (``kill -9`` mid-write) from one being written, and removes
only the former.

``hold_lock`` is the project's one lock: an exclusive ``flock`` on a lock file, held for a block (a run, a trial
attempt, a sweep), released by the kernel when its holder dies, so a stale lock never needs clearing. A second
process is refused at once (``LockHeld``, naming the holder's pid) or, with ``wait=True``, waits.

The module lives on the ground floor (``envs``) because every floor above writes files.
"""

from __future__ import annotations

import dataclasses
import errno
import fcntl
import json
import math
import os
import re
import secrets
import socket
import threading
from collections.abc import Callable, Iterator
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


def _try_lock(fd: int) -> bool:
    """An exclusive flock on ``fd`` if no one else holds one; False when another open file holds it."""
    try:
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except BlockingIOError:
        return False
    return True


def _is_file_of(path: Path, fd: int) -> bool:
    """Whether ``path`` still names the file open as ``fd`` (not removed, not replaced)."""
    try:
        named, held = os.stat(path, follow_symlinks=False), os.fstat(fd)
    except FileNotFoundError:
        return False
    return (named.st_dev, named.st_ino) == (held.st_dev, held.st_ino)


def _temp_pattern(path: Path) -> re.Pattern[str]:
    return re.compile(rf"\.{re.escape(path.name)}\.[0-9a-f]{{8}}\.tmp")


def _create_temp(path: Path) -> tuple[int, Path]:
    """A new, empty file beside ``path``, with a name no other writer has, locked by this writer until it is
    renamed or removed: (its descriptor, its path)."""
    while True:
        tmp = path.with_name(f".{path.name}.{secrets.token_hex(4)}.tmp")
        try:
            fd = os.open(tmp, _TEMP_FLAGS, 0o666)
        except FileExistsError:
            continue
        try:
            fcntl.flock(fd, fcntl.LOCK_EX)  # blocks only while a cleaner looks at it (below)
        except OSError:  # a file system without flock: the write still works, stale files stay
            return fd, tmp
        if _is_file_of(tmp, fd):
            return fd, tmp
        os.close(fd)  # a cleaner took it for a dead writer's between create and lock: take another name


def remove_stale_temps(path: str | os.PathLike) -> list[Path]:
    """Remove the temporary files of earlier writes of ``path`` whose writers died (``kill -9``): those no live
    writer holds locked. A concurrent write of the same target keeps its file. Returns what was removed."""
    path = Path(path)
    pattern = _temp_pattern(path)
    try:
        names = [name for name in os.listdir(path.parent) if pattern.fullmatch(name)]
    except FileNotFoundError:
        return []
    removed = []
    for name in names:
        stale = path.parent / name
        try:
            fd = os.open(stale, os.O_RDONLY | getattr(os, "O_NOFOLLOW", 0) | getattr(os, "O_CLOEXEC", 0))
        except OSError:  # renamed into place or removed meanwhile
            continue
        try:
            if _try_lock(fd) and _is_file_of(stale, fd):
                stale.unlink()
                removed.append(stale)
        except OSError:  # no flock here, or it vanished: leave it
            pass
        finally:
            os.close(fd)
    return removed


@contextmanager
def atomic_writer(path: str | os.PathLike, mode: str = "wb") -> Iterator[IO]:
    """An open temporary file that replaces ``path`` when the block ends without an exception. Temporary files
    that earlier, killed writes of ``path`` left are removed first. A failure of the file system (a full disk)
    is an OSError naming ``path``; a ``path`` that is not a regular file (a device, a FIFO) is never replaced."""
    path = Path(path)
    _refuse_special(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    remove_stale_temps(path)
    fd, tmp = _create_temp(path)
    try:
        with os.fdopen(fd, mode) as f:
            yield f
            f.flush()
            os.fsync(f.fileno())
            os.replace(tmp, path)  # still locked: a cleaner never takes a finished file for a dead one's
    except BaseException as exc:
        tmp.unlink(missing_ok=True)
        if isinstance(exc, OSError) and exc.filename in (None, str(tmp)) and exc.errno is not None:
            raise OSError(exc.errno, exc.strerror, str(path)) from exc  # write() names no file
        raise


def _refuse_special(path: Path) -> None:
    if path.exists() and not path.is_file():
        kind = "a folder" if path.is_dir() else "not a regular file"
        raise OSError(errno.EISDIR if path.is_dir() else errno.EPERM, f"is {kind}", str(path))


def unwritable(path: str | os.PathLike) -> str | None:
    """Why ``atomic_writer(path)`` would fail before anything is computed for it (None: it can be written): a
    folder or special file in its place, a file where a folder must be, a folder where files cannot be created.
    Creates nothing but a probe file it removes at once."""
    path = Path(path)
    if path.exists() and not path.is_file():
        return "a folder is there" if path.is_dir() else "it is not a regular file"
    folder = path.parent
    while not folder.exists():
        folder = folder.parent
    if not folder.is_dir():
        return f"{folder} is a file, not a folder"
    probe = folder / f".{path.name}.{secrets.token_hex(4)}.probe"
    try:
        os.close(os.open(probe, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600))
    except OSError as exc:
        return f"cannot create files in {folder} ({exc.strerror or exc})"
    probe.unlink()
    return None


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


def refused_global(exc: BaseException) -> str | None:
    """What ``torch.load(weights_only=True)``'s restricted unpickler refused to rebuild (``'module.name'``, or
    '' when it does not say), or None when ``exc`` is no such refusal (a damaged file, say). Lets a reader say
    what a hostile file is in one line instead of repeating torch's advice on how to load it anyway."""
    text = str(exc)
    if "Weights only load failed" not in text:
        return None
    found = re.search(r"GLOBAL (\S+)", text)
    return found.group(1) if found else ""


# -- locks -----------------------------------------------------------------------------------------------------


class LockHeld(RuntimeError):
    """Another live process holds the lock: ``holder`` is what it wrote there ("pid N on HOST"), or ''."""

    def __init__(self, path: Path, holder: str):
        self.path, self.holder = path, holder
        super().__init__(f"{path} is held by {holder or 'another process'}")


# the locks this process holds: lock file (real path) -> [descriptor, depth of nested holds]
_held: dict[str, list[int]] = {}
_held_guard = threading.Lock()


def _holder_of(fd: int) -> str:
    try:
        return os.pread(fd, 200, 0).decode(errors="replace").strip()
    except OSError:
        return ""


def _acquire(path: Path, wait: bool, on_wait: Callable[[str], None] | None) -> int:
    while True:
        fd = os.open(path, os.O_RDWR | os.O_CREAT | getattr(os, "O_CLOEXEC", 0), 0o666)
        try:
            if not _try_lock(fd):
                holder = _holder_of(fd)
                if not wait:
                    raise LockHeld(path, holder)
                if on_wait is not None:
                    on_wait(holder)
                fcntl.flock(fd, fcntl.LOCK_EX)
        except BaseException:
            os.close(fd)
            raise
        if _is_file_of(path, fd):  # not removed by its last holder while this process waited
            os.ftruncate(fd, 0)
            os.pwrite(fd, f"pid {os.getpid()} on {socket.gethostname()}\n".encode(), 0)
            return fd
        os.close(fd)


@contextmanager
def hold_lock(
    path: str | os.PathLike, *, wait: bool = False, on_wait: Callable[[str], None] | None = None
) -> Iterator[None]:
    """Hold an exclusive ``flock`` on the file ``path`` (created if missing) for the block.

    Another process holding it: ``LockHeld`` at once, or with ``wait`` a call of ``on_wait(holder)`` and a wait
    until it is released. The holder's pid and host are written in the file for the refusal message. The lock
    dies with its holder (``kill -9`` included). Re-entrant within a process: a block nested in another on the
    same file holds it too (a sweep attempt holds its trial folder, and the run inside takes the lock again).
    """
    path = Path(path)
    key = os.path.realpath(path)
    with _held_guard:
        entry = _held.get(key)
        if entry is not None:
            entry[1] += 1
    if entry is None:
        fd = _acquire(path, wait, on_wait)
        with _held_guard:
            entry = _held[key] = [fd, 1]
    try:
        yield
    finally:
        with _held_guard:
            entry[1] -= 1
            last = entry[1] == 0
            if last:
                del _held[key]
        if last:
            try:
                os.ftruncate(entry[0], 0)
            finally:
                os.close(entry[0])  # releases the flock
