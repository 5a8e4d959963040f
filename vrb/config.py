"""A run's configuration: the fields every algorithm shares (``TrainConfig``) and each algorithm's own fields
(an ``AlgoOptions`` dataclass next to its code, held in ``TrainConfig.options``).

Every field is declared with ``param(default, rule, meaning)``: the rule that validates it and a one-line
meaning stand beside it. A config is saved flat (shared fields, then the algorithm's) in ``config.json``, every
checkpoint and TensorBoard's HParams, so it holds only what the run uses; ``vrb.algorithms.make_config`` builds
one from such a flat mapping (``--set FIELD=VALUE`` on the command line).

Network sizes, learning rates and PPO's settings are ConvLab-2's GDPL/PPO/MLE ones for MultiWOZ
(policy/gdpl/config.json, policy/mle/multiwoz/config.json); the VRB bottleneck follows Park et al. (2020). The
defaults that depart from them (expert states, reward, decoder, pos_weight, the behaviour-cloning term, the
estimator's c and alpha_phi) are the ones measured in experiments/results/learning; the README names the
settings that reproduce ConvLab-2 and the original GDPL.
"""

from __future__ import annotations

import dataclasses
import math
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, TypeVar

from envs.cli import MAX_SEED
from vrb.errors import ConfigError, did_you_mean

SIMULATORS = ("agenda", "vhus")
EXPERT_STATES = ("replayed", "corpus")
DECODER_NAMES = ("greedy", "sample", "expected")
ENV_REWARDS = ("user", "evaluator", "none")
SELECT_METRICS = ("paper_success", "success", "paper_inform_f1", "paper_match")
MAX_LAYERS, MAX_LAYER_WIDTH = 16, 8192  # a network's bounds: 8192 x 8192 float32 weights are 256 MiB a layer

Rule = Callable[[str, Any], Any]  # (field name, value) -> the value, normalised; raises ConfigError


def _fail(name: str, value: Any, expected: str) -> None:
    raise ConfigError(f"config field {name!r} = {value!r}: expected {expected}")


def _number(value: Any) -> bool:
    return isinstance(value, int | float) and not isinstance(value, bool) and math.isfinite(value)


def integer(low: int = 0, high: int | None = None) -> Rule:
    expected = f"an integer >= {low}" if high is None else f"an integer in {low}..{high}"

    def check(name: str, value: Any) -> int:
        if (
            not isinstance(value, int)
            or isinstance(value, bool)
            or value < low
            or (high is not None and value > high)
        ):
            _fail(name, value, expected)
        return value

    return check


def number(low: float = 0.0, high: float = math.inf, strict: bool = False) -> Rule:
    """A finite number in [low, high] (or (low, high] when ``strict``)."""

    if high < math.inf:
        expected = f"a number in {'(' if strict else '['}{low}, {high}]"
    elif low > -math.inf:
        expected = f"a finite number {'>' if strict else '>='} {low}"
    else:
        expected = "a finite number"

    def check(name: str, value: Any) -> float:
        if not _number(value) or value > high or value < low or (strict and value == low):
            _fail(name, value, expected)
        return value

    return check


def choice(*options: str) -> Rule:
    def check(name: str, value: Any) -> str:
        if value not in options:
            _fail(name, value, f"one of {options}")
        return value

    return check


def boolean(name: str, value: Any) -> bool:
    if not isinstance(value, bool):
        _fail(name, value, "true or false")
    return value


def text(name: str, value: Any) -> str:
    if not isinstance(value, str):
        _fail(name, value, "a string")
    return value


def optional_path(name: str, value: Any) -> Path | None:
    if value is None or value == "":
        return None
    if not isinstance(value, str | Path):
        _fail(name, value, "a path or nothing")
    return Path(value)


def layer_sizes(name: str, value: Any) -> tuple[int, ...]:
    """Hidden layer widths: 1..MAX_LAYERS layers of 1..MAX_LAYER_WIDTH units (a width past it asks torch for
    more memory than a machine has: [1000000000] would be 1.36 TB)."""
    if (
        not isinstance(value, list | tuple)
        or not 0 < len(value) <= MAX_LAYERS
        or not all(isinstance(v, int) and not isinstance(v, bool) and 0 < v <= MAX_LAYER_WIDTH for v in value)
    ):
        _fail(name, value, f"a list of 1..{MAX_LAYERS} layer widths, each an integer in 1..{MAX_LAYER_WIDTH}")
    return tuple(value)


def device(name: str, value: Any) -> str:
    if not isinstance(value, str) or value.split(":")[0] not in ("cpu", "cuda"):
        _fail(name, value, "'cpu', 'cuda' or 'cuda:N'")
    return value


def param(default: Any, rule: Rule, meaning: str) -> Any:
    """A config field: its default, the rule that validates it, and what it means (shown by ``--show-config``)."""
    return field(default=default, metadata={"rule": rule, "meaning": meaning})


Config = TypeVar("Config", bound="Validated")


class Validated:
    """Dataclasses whose fields are declared with ``param``: each value is checked (and normalised) by its rule."""

    def __post_init__(self) -> None:
        for f in dataclasses.fields(self):  # type: ignore[arg-type]
            rule = f.metadata.get("rule")
            if rule is not None:
                object.__setattr__(self, f.name, rule(f.name, getattr(self, f.name)))
        self.check()

    def check(self) -> None:
        """Rules that tie several fields together."""

    @classmethod
    def field_names(cls) -> tuple[str, ...]:
        return tuple(f.name for f in dataclasses.fields(cls) if "rule" in f.metadata)  # type: ignore[arg-type]

    def items(self) -> Iterator[tuple[str, Any]]:
        for name in self.field_names():
            yield name, getattr(self, name)


def _plain(value: Any) -> Any:
    """JSON/YAML-able: tuples become lists, paths strings."""
    if isinstance(value, tuple):
        return list(value)
    if isinstance(value, Path):
        return str(value)
    return value


@dataclass(frozen=True)
class AlgoOptions(Validated):
    """An algorithm's own fields; the base has none (the rule-based policy of MLE needs no more)."""


@dataclass(frozen=True)
class TrainConfig(Validated):
    """What every run shares; ``options`` holds the algorithm's own fields."""

    algo: str = param("vrb", text, "the learning algorithm, by its registered name")
    simulator: str = param("agenda", choice(*SIMULATORS), "the simulated user: agenda or vhus")
    user_noise: float = param(
        0.0, number(0, 1), "probability of each corruption of the user's acts (envs.noise)"
    )
    seed: int = param(0, integer(0, MAX_SEED), "seeds the networks, the dialogues and every sampler")
    device: str = param("cpu", device, "torch device: cpu, cuda or cuda:N")
    torch_threads: int = param(1, integer(1), "torch CPU threads of the run")
    flush_denormal: bool = param(
        True, boolean, "floats below ~1e-38 as 0 (3x faster updates); false reproduces runs made before it"
    )
    out_dir: Path | None = param(None, optional_path, "the run folder (set by vrb.train from --out)")
    data_dir: Path | None = param(
        None, optional_path, "data folder (else $VRB_DATA_DIR, ../shared/multiwoz, cache)"
    )
    expert_states: str = param(
        "replayed",
        choice(*EXPERT_STATES),
        "expert states: replayed through the env's DST, or the corpus annotation",
    )
    epochs: int = param(200, integer(1), "learning epochs after the warm start")
    steps_per_epoch: int = param(1024, integer(1), "environment steps sampled each epoch")
    num_envs: int = param(8, integer(1), "dialogues stepped side by side while sampling")
    workers: int = param(
        0,
        integer(0),
        "processes sampling the PPO family's epochs, this one included (0: min(CPUs, num_envs, 8); 1: this "
        "process only); the samples do not depend on it",
    )
    gamma: float = param(0.99, number(0, 1), "discount of the task's rewards")
    env_reward: str = param(
        "user", choice(*ENV_REWARDS), "the env's reward: user (+80/-40/-1), evaluator (farmable), none"
    )
    eval_every: int = param(5, integer(1), "epochs between validations")
    eval_dialogues: int = param(200, integer(1), "validation dialogues (seeds 1,000,000...)")
    select_metric: str = param(
        "paper_success", choice(*SELECT_METRICS), "best.pt maximises this validation metric"
    )
    patience: int = param(0, integer(0), "stop after this many validations without a new best (0: never)")
    options: AlgoOptions = field(default_factory=AlgoOptions)

    def check(self) -> None:
        if not isinstance(self.options, AlgoOptions):
            raise ConfigError(f"config options {self.options!r}: expected an AlgoOptions dataclass")
        if self.steps_per_epoch % self.num_envs:
            _fail("steps_per_epoch", self.steps_per_epoch, f"a multiple of num_envs ({self.num_envs})")

    @property
    def steps_per_env(self) -> int:
        return self.steps_per_epoch // self.num_envs

    def to_dict(self) -> dict[str, Any]:
        """Plain, flat values: the shared fields, then the algorithm's."""
        return {name: _plain(value) for name, value in (*self.items(), *self.options.items())}

    def hparams(self) -> dict[str, int | float | str | bool]:
        """Flat scalars for TensorBoard HParams (layer sizes as '100x100', no path as '')."""
        return {
            k: "x".join(map(str, v)) if isinstance(v, list) else "" if v is None else v
            for k, v in self.to_dict().items()
        }

    def replace(self, **changes: Any) -> TrainConfig:
        """A copy with some fields changed, shared or the algorithm's (the algorithm itself stays)."""
        shared = {k: v for k, v in changes.items() if k in self.field_names()}
        own = {k: v for k, v in changes.items() if k not in shared}
        unknown = sorted(set(own) - set(self.options.field_names()))
        if unknown or "algo" in shared:
            raise ConfigError(f"cannot change {(unknown or ['algo'])[0]!r} of a {self.algo} run config")
        return dataclasses.replace(self, **shared, options=dataclasses.replace(self.options, **own))


def split_fields(values: Mapping[str, Any], options: type[AlgoOptions]) -> tuple[dict, dict]:
    """A flat mapping's shared fields and the algorithm's; an unknown name is refused with the known ones."""
    shared_names, own_names = set(TrainConfig.field_names()), set(options.field_names())
    unknown = sorted(set(values) - shared_names - own_names)
    if unknown:
        algo = values.get("algo", TrainConfig.algo)
        hint = did_you_mean(unknown[0], sorted(shared_names | own_names))
        raise ConfigError(
            f"unknown config field {unknown[0]!r} for algo {algo!r}"
            f"{hint or '; python -m vrb.train --show-config --algo ' + str(algo) + ' lists them'}"
        )
    shared = {k: v for k, v in values.items() if k in shared_names}
    own = {k: v for k, v in values.items() if k in own_names}
    return shared, own


def fields_help(options: type[AlgoOptions]) -> list[tuple[str, Any, str]]:
    """(name, default, meaning) of every field a run of that algorithm has, shared first."""
    rows = []
    for cls in (TrainConfig, options):
        for f in dataclasses.fields(cls):
            if "rule" in f.metadata:
                rows.append((f.name, _plain(f.default), f.metadata["meaning"]))
    return rows
