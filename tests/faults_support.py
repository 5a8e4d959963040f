"""Helpers of the fault-injection tests (``test_faults_*.py``): subprocesses, locks held elsewhere, damaged
copies of the data and checkpoints."""

from __future__ import annotations

import hashlib
import io
import os
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import pytest
import torch

from envs.multiwoz import data as mw_data
from vrb.algorithms import make_config
from vrb.checkpoint import FORMAT_VERSION, MAGIC, save_checkpoint

REPO_ROOT = Path(__file__).resolve().parents[1]
ENV = {**os.environ, "TQDM_DISABLE": "1"}
TINY_VHUS = {"embed_dim": 8, "hidden_dim": 12, "max_user_tokens": 8}
TINY_RUN = ["--epochs", "1", "--steps-per-epoch", "16", "--num-envs", "2", "--set", "mle_epochs=1"]


def one_line_error(err: str, *names: str) -> str:
    """The error of a command line: its last stderr line, which must name ``names``; no traceback anywhere."""
    assert "Traceback" not in err, err[-3000:]
    line = err.strip().splitlines()[-1]
    assert "error:" in line, err[-3000:]
    for name in names:
        assert str(name) in line, line
    return line


def python(code: str, **kwargs) -> subprocess.Popen:
    """A Python process running ``code`` in this repository, its stdout piped."""
    return subprocess.Popen(
        [sys.executable, "-c", textwrap.dedent(code)],
        cwd=REPO_ROOT,
        env=ENV,
        stdout=subprocess.PIPE,
        text=True,
        **kwargs,
    )


def holding(path: Path, seconds: float) -> subprocess.Popen:
    """Another process holding ``hold_lock(path)`` for ``seconds`` (it prints 'held' once it does)."""
    process = python(
        f"""
        import time
        from envs.fileio import hold_lock
        with hold_lock({str(path)!r}):
            print("held", flush=True)
            time.sleep({seconds})
        """
    )
    assert process.stdout.readline().strip() == "held"
    return process


def dead(pid: int) -> bool:
    """Gone, or a zombie no one has reaped yet (a container's pid 1 may never reap it)."""
    try:
        return Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0] in ("Z", "X")
    except (FileNotFoundError, ProcessLookupError):
        return True


def wait_for(condition, timeout: float, what: str):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        value = condition()
        if value:
            return value
        time.sleep(0.05)
    pytest.fail(f"gave up waiting for {what}")


def resum(folder: Path) -> None:
    """Rewrite SHA256SUMS to match the folder as it is now: a data folder whose checksums agree with its damage."""
    names = mw_data.read_checksums(folder)
    lines = [f"{mw_data.sha256_of(folder / name)}  {name}" for name in names if (folder / name).is_file()]
    (folder / "SHA256SUMS").write_text("\n".join(lines) + "\n")


def write_raw_checkpoint(path: Path, payload) -> None:
    """A file with a valid vrb checkpoint header and digest around any payload (what another writer could make)."""
    buffer = io.BytesIO()
    torch.save(payload, buffer)
    body = buffer.getvalue()
    digest = hashlib.sha256(body).hexdigest().encode()
    path.write_bytes(b"%s %d %s\n" % (MAGIC, FORMAT_VERSION, digest) + body)


def saved_payload(tmp_path: Path) -> dict:
    """A checkpoint payload as save_checkpoint writes it (a ppo config, no learner state)."""
    path = save_checkpoint(tmp_path / "source.pt", config=make_config(algo="ppo"), epoch=0, state={})
    return torch.load(io.BytesIO(path.read_bytes().split(b"\n", 1)[1]), weights_only=True)


class RunsCommand:
    """A hostile pickle: loading it would run a shell command."""

    def __init__(self, argument: str):
        self.argument = argument

    def __reduce__(self):
        return os.system, (self.argument,)
