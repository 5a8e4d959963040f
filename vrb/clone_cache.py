"""Behaviour-cloned starts computed once and reused (``CloningOptions.clone_cache``, on by default).

Why: every learner that starts from behaviour cloning (mle, ppo, gdpl, vrb, aldm; acer its own summary-action
cloning) clones the same policy from the same data with the same seed, ~18 s a trial of a sweep. An entry makes
a later start indistinguishable from a fresh one, so a run from the cache is bit for bit the run that clones.

**Key** (``Entry.key``): a sha256 of
- what the cloning reads: the seed, the cloning's own fields (the caller names them: every field it reads,
  nothing else), the expert-state source (``expert_states``) and the expert-cache keys of the training and test
  splits (``vrb.expert.cache_key``: ``EXPERT_VERSION`` and the checksums of every data file the transitions
  derive from, as that cache keys its entries);
- what the seed has produced when cloning begins: digests of the policy's initial weights and of the run
  generator's state (a learner that drew differently before cloning misses instead of being handed another
  start);
- what the floats depend on besides their inputs (``numerics``): the device type, ``flush_denormal``,
  ``torch_threads``, the torch version, the processor and the variables that choose the libraries' kernels; and
  ``CLONE_VERSION`` with a digest of the source of the code that clones (an edit of it never serves a stale
  start).
Nothing algorithm-specific enters it: ppo, gdpl, vrb, aldm and mle runs of one seed share one entry.

**Entry**: ``<cache>/clone/<kind>-s<seed>-<key[:20]>.pt``, ``<cache>`` being the expert cache's root
(``$VRB_CACHE_DIR``, else ``$XDG_CACHE_HOME/vrb``). It holds the cloned weights (CPU tensors), the policy's
train/eval mode, the TensorBoard records and the result the cloning logged and returned, the run generator's
state after cloning, the key, and a sha256 over all of it. Cloning must advance no other generator: a fresh
cloning that moved torch's global generator (or CUDA's) is used but not cached.

**Integrity and concurrency**: an entry is written atomically (``envs.fileio.atomic_writer``) and only after
its cloning finished, so a cloning cut short (an exception, ``KeyboardInterrupt``) leaves nothing. A process that
finds no usable entry takes ``<entry>.lock`` (``envs.fileio.hold_lock``, waiting), looks again, and clones only
if the entry is still missing: two runs that need one start clone it once, the second reads the first's. An
entry that does not load or whose key or digest disagrees is moved aside to ``<entry>.corrupt`` (under the
lock) with a warning and cloned again, as the VHUS cache does. A cache folder that cannot be written only costs
the cloning.
"""

from __future__ import annotations

import hashlib
import inspect
import json
import logging
import os
import platform
from collections.abc import Callable, Mapping
from contextlib import ExitStack
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch
from torch import nn

from envs.fileio import atomic_writer, hold_lock, to_jsonable
from envs.multiwoz.data import MultiWozData
from envs.vhus.cache import state_digest
from vrb.config import TrainConfig
from vrb.expert import cache_key as expert_cache_key
from vrb.expert import cache_root

logger = logging.getLogger(__name__)

CLONE_VERSION = "1"  # bump when the same inputs would clone differently for a reason the source digest misses
FORMAT = 1
FOLDER = "clone"
CORRUPT_SUFFIX = ".corrupt"
LOCK_SUFFIX = ".lock"
# Variables that change which kernels torch, MKL, oneDNN, OpenBLAS, numpy and glibc's libm run, or their threads.
KERNEL_VARIABLES = (
    "ATEN_CPU_CAPABILITY",
    "MKL_CBWR",
    "MKL_ENABLE_INSTRUCTIONS",
    "ONEDNN_MAX_CPU_ISA",
    "OPENBLAS_CORETYPE",
    "NPY_DISABLE_CPU_FEATURES",
    "GLIBC_TUNABLES",
    "OMP_NUM_THREADS",
    "MKL_NUM_THREADS",
    "OPENBLAS_NUM_THREADS",
)

Records = list[tuple[int, dict[str, float]]]  # (step, scalars) of the cloning's TensorBoard panel, in order
CloneFn = Callable[[], tuple[Records, dict[str, float]]]  # clones the policy in place: (records, result)


def default_cache_dir() -> Path:
    """``$VRB_CACHE_DIR/clone``, else ``$XDG_CACHE_HOME/vrb/clone`` (beside the expert transitions)."""
    return cache_root() / FOLDER


def code_digest(*objects: Any) -> str:
    """sha256 of the source of the functions and classes that clone (module docstrings and the rest of their
    files do not matter)."""
    digest = hashlib.sha256()
    for obj in objects:
        digest.update(f"{obj.__module__}.{obj.__qualname__}\0{inspect.getsource(obj)}\0".encode())
    return digest.hexdigest()


def numerics(cfg: TrainConfig) -> dict[str, Any]:
    """What the same inputs' floats depend on: the device, the run's float settings, the torch build, and which
    kernels the libraries pick, by the processor and by the variables that override that choice (a child with
    ``ATEN_CPU_CAPABILITY=default``, as ``tests/test_pinned_behaviour.py`` starts, rounds otherwise)."""
    device = torch.device(cfg.device)
    found = {
        "device": device.type,
        "flush_denormal": cfg.flush_denormal,
        "torch_threads": cfg.torch_threads,
        "torch": torch.__version__,
        "cpu": [platform.machine(), _cpu_model(), torch.backends.cpu.get_cpu_capability()],
        "environment": {name: os.environ.get(name) for name in KERNEL_VARIABLES},
    }
    if device.type == "cuda" and torch.cuda.is_initialized():
        found["gpu"] = torch.cuda.get_device_name(device)
    return found


def _cpu_model() -> str:
    try:
        lines = Path("/proc/cpuinfo").read_text().splitlines()
    except OSError:
        return platform.processor()
    return next((line.split(":", 1)[1].strip() for line in lines if line.startswith("model name")), "")


def _sha256(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


@dataclass(frozen=True)
class Entry:
    """Where a start lives in the cache and the key it must carry."""

    path: Path
    key: str

    @property
    def lock(self) -> Path:
        return self.path.with_name(self.path.name + LOCK_SUFFIX)

    @property
    def aside(self) -> Path:
        return self.path.with_name(self.path.name + CORRUPT_SUFFIX)


def entry_for(
    kind: str,
    cfg: TrainConfig,
    data: MultiWozData,
    training_split: str,
    fields: Mapping[str, Any],
    code: str,
    policy: nn.Module,
    generator: torch.Generator,
    cache_dir: Path | None = None,
) -> Entry:
    """The entry of a ``kind`` of cloning (``multilabel``, ``summary``) that reads ``fields`` and runs ``code``
    (``code_digest``), for this run's seed, data, policy and generator as they are now (module docstring)."""
    states = cfg.expert_states
    payload = {
        "version": CLONE_VERSION,
        "kind": kind,
        "code": code,
        "seed": cfg.seed,
        "expert_states": states,
        "data": {split: expert_cache_key(data, split, states) for split in (training_split, "test")},
        "fields": dict(fields),
        "numerics": numerics(cfg),
        "start": {
            "policy": state_digest(policy.state_dict()),
            "generator": _sha256(generator.get_state().numpy().tobytes()),
        },
    }
    key = _sha256(json.dumps(payload, sort_keys=True, default=to_jsonable).encode())
    folder = cache_dir if cache_dir is not None else default_cache_dir()
    return Entry(folder / f"{kind}-s{cfg.seed}-{key[:20]}.pt", key)


@dataclass(frozen=True)
class ClonedStart:
    """What makes a cached start indistinguishable from a fresh one."""

    policy: dict[str, torch.Tensor]  # the cloned weights, on the CPU
    training: bool  # the mode the cloning left the policy in
    records: Records
    result: dict[str, float]  # what the cloning returned (results.json's ``mle``)
    generator: torch.Tensor  # the run generator's state after cloning

    def digest(self) -> str:
        told = json.dumps([self.training, self.records, self.result], sort_keys=True)
        parts = (state_digest(self.policy), told, _sha256(self.generator.numpy().tobytes()))
        return _sha256("\0".join(parts).encode())

    def apply(self, policy: nn.Module, generator: torch.Generator) -> None:
        policy.load_state_dict(self.policy)
        policy.train(self.training)
        generator.set_state(self.generator)


def _other_rngs() -> list[torch.Tensor]:
    """The generators a cloning must leave alone: torch's global CPU one, and CUDA's once initialised."""
    states = [torch.get_rng_state()]
    if torch.cuda.is_available() and torch.cuda.is_initialized():
        states += torch.cuda.get_rng_state_all()
    return states


def _clone_fresh(policy: nn.Module, generator: torch.Generator, clone: CloneFn) -> tuple[ClonedStart, bool]:
    """Clone now: (the start, whether it may be cached, i.e. whether the cloning left other generators alone).
    Gradients are dropped, so that a fresh start and a cached one are the same module state."""
    others = _other_rngs()
    records, result = clone()
    policy.zero_grad(set_to_none=True)
    start = ClonedStart(
        {name: tensor.detach().cpu().clone() for name, tensor in policy.state_dict().items()},
        policy.training,
        [(int(step), dict(scalars)) for step, scalars in records],
        dict(result),
        generator.get_state(),
    )
    moved = [a for a, b in zip(others, _other_rngs(), strict=True) if not torch.equal(a, b)]
    return start, not moved


def read_entry(entry: Entry) -> tuple[ClonedStart | None, str | None]:
    """(the start the entry holds, None) when it is usable; (None, why not) when it is not; (None, None) when
    there is none."""
    if not entry.path.is_file():
        return None, None
    try:
        saved = torch.load(entry.path, map_location="cpu", weights_only=True)
        start = ClonedStart(
            saved["policy"],
            bool(saved["training"]),
            [(int(step), dict(scalars)) for step, scalars in saved["records"]],
            dict(saved["result"]),
            saved["generator"],
        )
    except Exception as exc:  # torch raises many types for a damaged file; a missing field is a KeyError
        return None, f"unreadable ({type(exc).__name__}: {' '.join(str(exc).split())[:200]})"
    if saved.get("format") != FORMAT or saved.get("key") != entry.key:
        return None, f"not a format-{FORMAT} entry of this key"
    if saved.get("sha256") != start.digest():
        return None, "its content does not match its sha256"
    return start, None


def write_entry(entry: Entry, start: ClonedStart) -> None:
    payload = {
        "format": FORMAT,
        "key": entry.key,
        "policy": start.policy,
        "training": start.training,
        "records": [[step, scalars] for step, scalars in start.records],
        "result": start.result,
        "generator": start.generator,
        "sha256": start.digest(),
    }
    with atomic_writer(entry.path) as f:
        torch.save(payload, f)


def reuse_or_clone(
    entry: Entry | None, policy: nn.Module, generator: torch.Generator, clone: CloneFn
) -> ClonedStart:
    """The start of ``entry`` put into ``policy`` and ``generator``, or ``clone()`` run (and cached) when there
    is none; ``entry`` None clones without the cache. Either way the policy and the generator end where a fresh
    cloning leaves them."""
    if entry is None:
        return _clone_fresh(policy, generator, clone)[0]
    start, _ = read_entry(entry)
    if start is not None:
        logger.info("cloned start reused from %s", entry.path)
        start.apply(policy, generator)
        return start
    with ExitStack() as held:
        try:
            entry.path.parent.mkdir(parents=True, exist_ok=True)
            held.enter_context(hold_lock(entry.lock, wait=True, on_wait=lambda who: _say_waiting(entry, who)))
        except OSError as exc:
            logger.warning("clone cache %s is unusable (%s); cloning without it", entry.path.parent, exc)
            return _clone_fresh(policy, generator, clone)[0]
        start, reason = read_entry(entry)  # another process may have written it while this one waited
        if start is not None:
            logger.info("cloned start reused from %s (cloned meanwhile by another run)", entry.path)
            start.apply(policy, generator)
            return start
        if reason is not None:
            try:
                os.replace(entry.path, entry.aside)
            except OSError as exc:  # a read-only cache: clone, and leave the entry to whoever can fix it
                logger.warning("cloned start %s is unusable (%s) and stays (%s)", entry.path, reason, exc)
                return _clone_fresh(policy, generator, clone)[0]
            logger.warning(
                "cloned start %s is unusable (%s); moved it to %s", entry.path, reason, entry.aside
            )
        start, cacheable = _clone_fresh(policy, generator, clone)
        if not cacheable:
            logger.warning("the cloning moved a generator besides the run's: its start is not cached")
            return start
        try:
            write_entry(entry, start)
            logger.info("cloned start cached at %s", entry.path)
        except OSError as exc:  # a read-only cache only costs a cloning next time
            logger.warning("cloned start not cached at %s (%s)", entry.path, exc)
        return start


def _say_waiting(entry: Entry, holder: str) -> None:
    logger.info("cloned start %s is being cloned by %s; waiting for it", entry.path, holder or "another run")
