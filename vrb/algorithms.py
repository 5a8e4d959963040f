"""Algorithms as declared plugins, the way Gymnasium registers environments.

An ``Algorithm`` names its config fields (an ``AlgoOptions`` dataclass), how to build its learner for a run, and
how to rebuild its acting agent from a checkpoint. vrb registers its own below; any other package declares its
algorithms as entry points of the group ``vrb.algorithms`` in its ``pyproject.toml``, each naming an
``Algorithm`` object, so vrb never names them::

    [project.entry-points."vrb.algorithms"]
    acer = "baselines.acer:ALGORITHM"

(entry points are read from the installed project: ``pip install -e .`` after adding one).
``python -m vrb.train --help`` lists every registered algorithm.
"""

from __future__ import annotations

import functools
import logging
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from importlib import metadata
from typing import Any

from vrb.agents import Agent, NeuralAgent
from vrb.checkpoint import Checkpoint, CheckpointError
from vrb.config import AlgoOptions, MLEOptions, TrainConfig, split_fields
from vrb.errors import ConfigError
from vrb.learner import Learner, RunContext
from vrb.learners import ClonedPolicy, LearnedRewardPolicy, PolicyLearner
from vrb.policy import MultiLabelPolicy
from vrb.ppo import PPOOptions
from vrb.reward import GDPLOptions, VRBOptions

logger = logging.getLogger(__name__)

ENTRY_POINT_GROUP = "vrb.algorithms"
# checkpoint, its config, a decoder to act with instead of the run's own (or None), a sampling seed -> agent
AgentLoader = Callable[[Checkpoint, TrainConfig, "str | None", int], Agent]


def neural_agent(checkpoint: Checkpoint, cfg: TrainConfig, decoder: str | None, sample_seed: int) -> Agent:
    """The multi-label policy a checkpoint holds, decoding as its run did unless ``decoder`` says otherwise."""
    if "policy" not in checkpoint.state:
        raise CheckpointError(f"checkpoint {checkpoint.path} holds no policy weights")
    policy = MultiLabelPolicy(hidden_sizes=cfg.options.policy_hidden)
    try:
        policy.load_state_dict(checkpoint.state["policy"])
    except (RuntimeError, TypeError, KeyError) as exc:
        raise CheckpointError(
            f"checkpoint {checkpoint.path}: its policy weights do not fit policy_hidden {cfg.options.policy_hidden}"
        ) from exc
    options = cfg.options
    return NeuralAgent(policy, decoder or options.decoder, options.empty_fallback, sample_seed)


@dataclass(frozen=True)
class Algorithm:
    name: str
    summary: str  # one line for --help
    options: type[AlgoOptions]  # the algorithm's own config fields
    make_learner: Callable[[RunContext], Learner]
    load_agent: AgentLoader = neural_agent
    learns_reward: bool = False  # whether env_reward=none (its learned reward alone) makes sense
    decodes: bool = True  # whether its agent acts through a decoder (vrb.policy.DECODERS) that may be chosen
    devices: tuple[str, ...] = ("cpu", "cuda")  # torch devices its learner honours
    check: Callable[[TrainConfig], None] | None = None  # rules tying its fields to the shared ones


_REGISTRY: dict[str, Algorithm] = {}


def register(algorithm: Algorithm) -> Algorithm:
    """Add an algorithm; registering the same name twice with another object is refused."""
    known = _REGISTRY.get(algorithm.name)
    if known is not None and known != algorithm:
        raise ValueError(f"algorithm {algorithm.name!r} is registered already (by {known.make_learner!r})")
    _REGISTRY[algorithm.name] = algorithm
    return algorithm


@functools.cache
def _load_entry_points() -> None:
    for entry in metadata.entry_points(group=ENTRY_POINT_GROUP):
        algorithm = entry.load()
        if not isinstance(algorithm, Algorithm) or algorithm.name != entry.name:
            raise TypeError(
                f"entry point {entry.name} = {entry.value!r} must name an Algorithm called {entry.name!r}"
            )
        register(algorithm)


def registered() -> dict[str, Algorithm]:
    """Every algorithm: vrb's own and those declared by installed packages."""
    _load_entry_points()
    return dict(_REGISTRY)


def get(name: str) -> Algorithm:
    algorithms = registered()
    if name not in algorithms:
        raise ConfigError(f"config field 'algo' = {name!r}: expected one of {sorted(algorithms)}")
    return algorithms[name]


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
    cfg = config_of(checkpoint)
    algorithm = get(cfg.algo)
    if decoder is not None and not algorithm.decodes:
        raise CheckpointError(
            f"--decoder {decoder}: {checkpoint.path} holds a {cfg.algo} policy, which acts by its own rule"
        )
    return algorithm.load_agent(checkpoint, cfg, decoder, sample_seed)


register(Algorithm("mle", "behaviour cloning of the corpus, nothing after", MLEOptions, ClonedPolicy))
register(Algorithm("ppo", "PPO on the env's reward (the user's, by default)", PPOOptions, PolicyLearner))
register(
    Algorithm(
        "gdpl",
        "PPO on GDPL's AIRL reward estimator (Takanobu et al. 2019)",
        GDPLOptions,
        LearnedRewardPolicy,
        learns_reward=True,
    )
)
register(
    Algorithm(
        "vrb",
        "PPO on the variational reward estimator bottleneck (Park et al. 2020)",
        VRBOptions,
        LearnedRewardPolicy,
        learns_reward=True,
    )
)
