"""Golden ConvLab-2 traces: reading them and moving a Mersenne Twister to a recorded position.

A position is the number of 32-bit words drawn since ``seed(s)`` (``random()`` draws two, each
``getrandbits(k <= 32)`` or ``_randbelow`` attempt one), as ``../shared/traces/README.md`` defines it.
"""

from __future__ import annotations

import gzip
import json
import os
import random
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from envs.multiwoz.data import REPO_ROOT

TRACES_ENV_VAR = "VRB_TRACES_DIR"
MT_WORDS = 624  # words per Mersenne Twister block


def traces_dir() -> Path:
    """``$VRB_TRACES_DIR`` or ``../shared/traces`` beside the repository."""
    return Path(os.environ.get(TRACES_ENV_VAR) or REPO_ROOT.parent / "shared" / "traces")


def read_traces(path: str | os.PathLike, limit: int | None = None) -> Iterator[dict[str, Any]]:
    """Dialogues of a ``.jsonl`` or ``.jsonl.gz`` trace file, in file order."""
    path = Path(path)
    opener = gzip.open if path.suffix == ".gz" else open
    with opener(path, "rt") as f:
        for count, line in enumerate(f):
            if limit is not None and count >= limit:
                return
            if line.strip():
                yield json.loads(line)


def rng_at(seed: int, position: int) -> random.Random:
    """A generator seeded with ``seed`` that has drawn ``position`` words."""
    rng = random.Random(seed)
    advance(rng, position)
    return rng


def advance(rng: random.Random, words: int) -> None:
    for _ in range(words):
        rng.getrandbits(32)


def rng_position(rng: random.Random, seed: int, max_blocks: int = 10_000) -> int:
    """How many words ``rng`` has drawn since ``seed(seed)``.

    The twister regenerates its 624-word key once per block; a probe that jumps a block at a time finds the
    key ``rng`` holds, and the key's read index gives the rest.
    """
    _, target, _ = rng.getstate()
    probe = random.Random(seed)
    for block in range(max_blocks + 1):
        key = probe.getstate()[1]
        if key[:MT_WORDS] == target[:MT_WORDS]:
            return MT_WORDS * (block - 1) + target[MT_WORDS] if block else 0
        advance(probe, MT_WORDS)
    raise ValueError(f"rng is more than {max_blocks} blocks past seed {seed}, or was not seeded with it")


@dataclass(frozen=True)
class Mismatch:
    """The first difference a parity comparer found in one dialogue."""

    seed: int
    turn: int | None  # None: the dialogue's final record
    field: str
    expected: Any
    actual: Any

    def __str__(self) -> str:
        where = "final" if self.turn is None else f"turn {self.turn}"
        return f"seed {self.seed} {where} {self.field}: expected {self.expected!r}, got {self.actual!r}"


class TurnTally:
    """Counts recorded turns whose checks all pass and keeps the first failing check in detail."""

    def __init__(self, seed: int):
        self.seed, self.matched = seed, 0
        self.first: Mismatch | None = None

    def add(self, turn_index: int, checks: list[tuple[str, Any, Any]]) -> None:
        """``checks``: (field, recorded, reproduced) triples of one turn."""
        failed = [(field, want, got) for field, want, got in checks if want != got]
        if not failed:
            self.matched += 1
        elif self.first is None:
            self.first = Mismatch(self.seed, turn_index, *failed[0])
