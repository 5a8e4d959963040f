"""A sweep's config file: parsing and validation, and the trials its grid expands to (see ``experiments.sweep``)."""

from __future__ import annotations

import dataclasses
import hashlib
import itertools
import json
from collections.abc import Iterable, Mapping
from pathlib import Path
from typing import Any

import yaml

from vrb.algorithms import make_config
from vrb.config import Rule, TrainConfig, integer, number
from vrb.errors import ConfigError

SPEC_KEYS = ("name", "base", "grid", "evaluation", "trials")
EVALUATION_DEFAULTS = {"dialogues": 1000, "first_seed": 0}
TRIAL_DEFAULTS = {"max_retries": 2, "cpus": 1}
# the rule of each setting of the evaluation and trials sections (vrb.config's rules, as for run fields)
SECTION_RULES: dict[str, Rule] = {
    "evaluation.dialogues": integer(1),
    "evaluation.first_seed": integer(0),
    "trials.max_retries": integer(0),
    "trials.cpus": number(
        0, strict=True
    ),  # CPUs a trial reserves (Ray) or is given (processes); fractions ok
}
# how each axis is spelt in a trial id, in this order (other axes follow by name)
AXIS_LABELS = {"algo": "", "simulator": "", "seed": "s", "ic": "ic", "user_noise": "noise"}


class SpecError(ValueError):
    """A sweep config that cannot run; the message names the file and the bad entry."""


@dataclasses.dataclass(frozen=True)
class Trial:
    trial_id: str
    axes: dict[str, Any]
    config: TrainConfig

    def params(self, sweep_dir: Path, evaluation: Mapping[str, int]) -> dict[str, Any]:
        return {
            "trial_id": self.trial_id,
            "axes": self.axes,
            "config": self.config.to_dict(),
            "out": str(sweep_dir / "trials" / self.trial_id),
            "evaluation": dict(evaluation),
        }


@dataclasses.dataclass(frozen=True)
class SweepSpec:
    name: str
    base: dict[str, Any]
    grid: list[dict[str, list[Any]]]
    evaluation: dict[str, int]
    max_retries: int
    cpus: float
    # what the command line changed (experiments.sweep.overrides): "set" (fields for every trial, beside base)
    # and "seeds"; the grid already holds their axes
    overrides: dict[str, Any] = dataclasses.field(default_factory=dict)

    def trials(self) -> list[Trial]:
        """Every grid point once, in config order; equal configs from two blocks are one trial."""
        trials: dict[str, Trial] = {}
        fields = self.overrides.get("set", {})
        for block in self.grid:
            names = list(block)
            for values in itertools.product(*(block[name] for name in names)):
                axes = dict(zip(names, values, strict=True))
                file_values = {"workers": max(1, int(self.cpus)), **self.base, **axes}
                try:
                    config = make_config({**file_values, **fields, **axes})
                except (TypeError, ValueError, ConfigError) as exc:
                    raise SpecError(f"sweep {self.name!r}, grid point {axes}: {exc}") from exc
                explicit = {*self.base, *axes, *_changed(fields, file_values, config)}
                trial = Trial(_trial_id(axes, config, explicit, self.evaluation), axes, config)
                trials.setdefault(trial.trial_id, trial)
        return list(trials.values())


def _changed(fields: Mapping[str, Any], file_values: Mapping[str, Any], config: TrainConfig) -> set[str]:
    """The command line's fields that change a trial's config from the file's: a ``--set`` to what the trial has
    anyway (a default, say) keeps its id, so finished trials are not run again for nothing."""
    if not fields:
        return set()
    try:
        plain = make_config(file_values).to_dict()
    except (TypeError, ValueError, ConfigError):  # the file's values alone are no config: every field counts
        return set(fields)
    given = config.to_dict()
    return {name for name in fields if plain.get(name) != given[name]}


def load_spec(path: str | Path) -> SweepSpec:
    path = Path(path)
    try:
        raw = yaml.safe_load(path.read_text())
    except (OSError, yaml.YAMLError) as exc:
        raise SpecError(f"sweep config {path}: {exc}") from exc
    if not isinstance(raw, dict):
        raise SpecError(f"sweep config {path}: expected a mapping with keys {SPEC_KEYS}")
    unknown = sorted(set(raw) - set(SPEC_KEYS))
    if unknown:
        raise SpecError(f"sweep config {path}: unknown key {unknown[0]!r}; expected some of {SPEC_KEYS}")
    base = raw.get("base") or {}
    grid = raw.get("grid")
    if isinstance(grid, dict):
        grid = [grid]
    if (
        not isinstance(base, dict)
        or not isinstance(grid, list)
        or not grid
        or not all(isinstance(b, dict) for b in grid)
    ):
        raise SpecError(
            f"sweep config {path}: 'base' must be a mapping and 'grid' a non-empty list of mappings"
        )
    blocks = [
        {name: values if isinstance(values, list) else [values] for name, values in block.items()}
        for block in grid
    ]
    for block in blocks:
        for name, values in block.items():
            if not values:
                raise SpecError(f"sweep config {path}: grid axis {name!r} has no values")
    evaluation = _section(path, raw, "evaluation", EVALUATION_DEFAULTS)
    trials = _section(path, raw, "trials", TRIAL_DEFAULTS)
    name = str(raw.get("name") or path.stem)
    if not _plain_name(name):
        raise SpecError(
            f"sweep config {path}: 'name' = {name!r}: expected one plain folder name (no '/', not starting "
            "with '.'), the sweep's folder under runs/"
        )
    spec = SweepSpec(
        name=name,
        base=base,
        grid=blocks,
        evaluation=evaluation,
        max_retries=trials["max_retries"],
        cpus=float(trials["cpus"]),
    )
    spec.trials()  # every grid point must be a valid TrainConfig before anything starts
    return spec


def _plain_name(name: str) -> bool:
    """One path component that stays where it is put: no separator, no '.' or '..', nothing hidden or odd."""
    return (
        bool(name)
        and not name.startswith(".")
        and "/" not in name
        and "\\" not in name
        and name.isprintable()
        and Path(name).name == name
    )


def _section(path: Path, raw: Mapping[str, Any], key: str, defaults: Mapping[str, Any]) -> dict[str, Any]:
    values = raw.get(key) or {}
    unknown = sorted(set(values) - set(defaults)) if isinstance(values, dict) else [values]
    if unknown:
        raise SpecError(
            f"sweep config {path}: {key}.{unknown[0]} is unknown; expected some of {sorted(defaults)}"
        )
    values = {**defaults, **values}
    for name, value in values.items():
        try:
            SECTION_RULES[f"{key}.{name}"](f"{key}.{name}", value)
        except ConfigError as exc:
            raise SpecError(f"sweep config {path}: {exc}") from None
    return values


def _trial_id(
    axes: Mapping[str, Any],
    config: TrainConfig,
    explicit_fields: Iterable[str],
    evaluation: Mapping[str, int],
) -> str:
    """A readable label of the grid point plus a digest of every setting the config file names."""
    ordered = [name for name in AXIS_LABELS if name in axes] + sorted(set(axes) - set(AXIS_LABELS))
    label = "-".join(f"{AXIS_LABELS.get(name, name)}{axes[name]}" for name in ordered)
    explicit = {name: value for name, value in config.to_dict().items() if name in explicit_fields}
    identity = {**explicit, "evaluation": dict(evaluation)}
    digest = hashlib.sha256(json.dumps(identity, sort_keys=True).encode()).hexdigest()[:8]
    return f"{label}-{digest}".replace("/", "_").replace(" ", "_")
