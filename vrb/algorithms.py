"""Algorithms as declared plugins, registered the way Gymnasium registers environments: by name, with the code
named as lazy ``"module:attr"`` strings that are imported only when a run needs them.

An ``Algorithm`` holds its config fields (an ``AlgoOptions`` dataclass), its learner (``"module:attr"`` of a
callable ``RunContext -> Learner``) and how to rebuild its acting agent from a checkpoint. Every algorithm, vrb's
own and the baselines alike, is an entry point of the group ``vrb.algorithms`` in a ``pyproject.toml``, naming an
``Algorithm`` object, so this registry names none of them::

    [project.entry-points."vrb.algorithms"]
    vrb = "vrb.learners:VRB"            # declared without torch: its code is imported when a run starts
    acer = "baselines.acer:ALGORITHM"   # declared beside its code

Entry points are read from the installed project (``pip install -e .``, again after adding one) and loaded one
at a time, when their name is asked for; ``python -m vrb.train --help`` lists every registered algorithm.
``register`` adds one by hand (a test, a notebook).
"""

from __future__ import annotations

import functools
import importlib
import logging
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from importlib import metadata
from typing import TYPE_CHECKING, Any

from vrb.config import AlgoOptions, TrainConfig, split_fields
from vrb.errors import ConfigError, did_you_mean

if TYPE_CHECKING:
    from vrb.acting import Agent
    from vrb.checkpoint import Checkpoint
    from vrb.loop import Learner, RunContext

logger = logging.getLogger(__name__)

ENTRY_POINT_GROUP = "vrb.algorithms"
# checkpoint, its config, a decoder to act with instead of the run's own (or None), a sampling seed -> agent
AgentLoader = Callable[["Checkpoint", TrainConfig, "str | None", int], "Agent"]


def resolve(target: str | Callable) -> Any:
    """A ``"module:attr"`` string imported now (once), or the object itself."""
    if not isinstance(target, str):
        return target
    module, _, attr = target.partition(":")
    return functools.reduce(getattr, attr.split("."), importlib.import_module(module))


@dataclass(frozen=True)
class Algorithm:
    name: str
    summary: str  # one line for --help
    options: type[AlgoOptions]  # the algorithm's own config fields
    learner: str | Callable[[RunContext], Learner]  # "module:attr", imported when a run starts
    agent_loader: str | AgentLoader = "vrb.learners.mle:load_agent"  # the multi-label policy of a checkpoint
    learns_reward: bool = False  # whether env_reward=none (its learned reward alone) makes sense
    decodes: bool = True  # whether its agent acts through a decoder (vrb.policy.DECODERS) that may be chosen
    devices: tuple[str, ...] = ("cpu", "cuda")  # torch devices its learner honours
    check: Callable[[TrainConfig], None] | None = None  # rules tying its fields to the shared ones

    def make_learner(self, ctx: RunContext) -> Learner:
        return resolve(self.learner)(ctx)

    def load_agent(self, checkpoint: Checkpoint, cfg: TrainConfig, decoder: str | None, seed: int) -> Agent:
        return resolve(self.agent_loader)(checkpoint, cfg, decoder, seed)


_REGISTRY: dict[str, Algorithm] = {}


def register(algorithm: Algorithm) -> Algorithm:
    """Add an algorithm; registering the same name twice with another object is refused."""
    known = _REGISTRY.get(algorithm.name)
    if known is not None and known != algorithm:
        raise ValueError(f"algorithm {algorithm.name!r} is registered already (by {known.learner!r})")
    _REGISTRY[algorithm.name] = algorithm
    return algorithm


@functools.cache
def _entry_points() -> dict[str, metadata.EntryPoint]:
    return {entry.name: entry for entry in metadata.entry_points(group=ENTRY_POINT_GROUP)}


def _load_entry_point(name: str) -> None:
    entry = _entry_points()[name]
    algorithm = entry.load()
    if not isinstance(algorithm, Algorithm) or algorithm.name != entry.name:
        raise TypeError(
            f"entry point {entry.name} = {entry.value!r} must name an Algorithm called {entry.name!r}"
        )
    register(algorithm)


def names() -> list[str]:
    """Every algorithm's name, vrb's own and those declared by installed packages, importing none of them."""
    return sorted({*_REGISTRY, *_entry_points()})


def registered() -> dict[str, Algorithm]:
    """Every algorithm, its plugins imported."""
    for name in _entry_points():
        if name not in _REGISTRY:
            _load_entry_point(name)
    return dict(_REGISTRY)


def get(name: str) -> Algorithm:
    if name not in _REGISTRY and name in _entry_points():
        _load_entry_point(name)
    if name not in _REGISTRY:
        if not names():
            raise ConfigError(
                f"config field 'algo' = {name!r}: no algorithm is registered; install the project "
                "(pip install -e .) so that its entry points are found"
            )
        raise ConfigError(f"config field 'algo' = {name!r}: no such algorithm{did_you_mean(name, names())}")
    return _REGISTRY[name]


def make_config(values: Mapping[str, Any] | None = None, **fields: Any) -> TrainConfig:
    """A run config from flat fields (shared and the algorithm's), validated; missing fields take defaults."""
    values = {**(values or {}), **fields}
    algorithm = get(values.get("algo", TrainConfig.algo))
    shared, own = split_fields(values, algorithm.options)
    cfg = TrainConfig(**shared, options=algorithm.options(**own))
    if cfg.env_reward == "none" and not algorithm.learns_reward:
        raise ConfigError(f"config field 'env_reward' = 'none': {cfg.algo} learns from the env's reward")
    if cfg.device.split(":")[0] not in algorithm.devices:
        raise ConfigError(
            f"config field 'device' = {cfg.device!r}: {cfg.algo} runs on {algorithm.devices} only"
        )
    if algorithm.check is not None:
        algorithm.check(cfg)
    return cfg


def config_of(checkpoint: Checkpoint) -> TrainConfig:
    """The run config a checkpoint was written with. Fields of other algorithms are dropped: checkpoints
    written before configs were split per algorithm hold every algorithm's fields."""
    from vrb.checkpoint import CheckpointError

    try:
        values = dict(checkpoint.config)
        own = set(TrainConfig.field_names()) | set(
            get(values.get("algo", TrainConfig.algo)).options.field_names()
        )
        others = {name for a in registered().values() for name in a.options.field_names()} - own
        return make_config({k: v for k, v in values.items() if k not in others})
    except (ConfigError, TypeError) as exc:
        raise CheckpointError(
            f"checkpoint {checkpoint.path} has a config this vrb cannot use: {exc}"
        ) from exc


def load_agent(checkpoint: Checkpoint, decoder: str | None = None, sample_seed: int = 0) -> Agent:
    """The acting policy a checkpoint holds, rebuilt by its algorithm."""
    from vrb.checkpoint import CheckpointError

    cfg = config_of(checkpoint)
    algorithm = get(cfg.algo)
    if decoder is not None and not algorithm.decodes:
        raise CheckpointError(
            f"--decoder {decoder}: {checkpoint.path} holds a {cfg.algo} policy, which acts by its own rule"
        )
    return algorithm.load_agent(checkpoint, cfg, decoder, sample_seed)
