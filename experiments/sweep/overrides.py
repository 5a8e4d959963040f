"""The command line's changes to a sweep's config: ``--set FIELD=VALUE``, ``--epochs N`` and ``--seeds S ...``.

A ``--set`` field applies to every trial, like the config's ``base:``; where a grid block has the field as an
axis, the axis becomes that one value (so ``--set user_noise=0.3`` runs the noisy half of a clean-vs-noisy
grid, under the same trial ids as the full sweep). ``--seeds`` replaces the seed axis of every block (adding it
where a block has none). A field the command line changes enters each trial's settings digest like the file's
own (``spec.SweepSpec.trials``), so a trial that ran with other settings is never skipped as finished, while one
set to what the trials have anyway (``--set torch_threads=1``) keeps their ids. ``SweepSpec.overrides`` keeps
what the command line changed, and every store row records it.
"""

from __future__ import annotations

import dataclasses
import json
from collections.abc import Mapping, Sequence
from typing import Any

from experiments.sweep.spec import SpecError, SweepSpec
from vrb import algorithms
from vrb.config import TrainConfig
from vrb.errors import UsageError, did_you_mean

SEED_AXIS = "seed"
# fields a sweep sets for itself, with what to use instead
REFUSED = {"out_dir": "each trial's folder is SWEEP_DIR/trials/TRIAL_ID; choose the sweep folder with --out"}


def parse_sets(items: Sequence[str], epochs: int | None = None) -> dict[str, Any]:
    """``FIELD=VALUE`` strings (and ``--epochs``) to field values, exactly as ``python -m vrb.train`` reads its
    own ``--set`` and ``--epochs`` (JSON values, else strings; ``--set`` wins over the flag)."""
    if not items and epochs is None:
        return {}
    from vrb.train import build_parser, config_values  # pulls in TensorBoard: only when asked

    argv = [f"--set={item}" for item in items] + ([] if epochs is None else [f"--epochs={epochs}"])
    return config_values(build_parser().parse_args(argv))


def field_defaults() -> dict[str, Any]:
    """Every field some trial may have (the shared ones and every registered algorithm's), with its default."""
    defaults: dict[str, Any] = {}
    for cls in (TrainConfig, *(a.options for a in algorithms.registered().values())):
        defaults |= {f.name: f.default for f in dataclasses.fields(cls) if f.name != "options"}
    return defaults


def _as_declared(value: Any, default: Any) -> Any:
    """``--set user_noise=0`` as 0.0 when the field is a float: the trial id of the config's ``0.0``, not a new one."""
    if isinstance(default, float) and isinstance(value, int) and not isinstance(value, bool):
        return float(value)
    return value


def apply_overrides(
    spec: SweepSpec, values: Mapping[str, Any], seeds: Sequence[int] | None = None
) -> SweepSpec:
    """``spec`` with the command line's fields and seeds; a bad name or value is a one-line error naming it."""
    if not values and seeds is None:
        return spec
    defaults = field_defaults()
    known = sorted(defaults)
    for name, value in values.items():
        if name in REFUSED:
            raise UsageError(f"--set {name}={_spelt(value)}: {REFUSED[name]}")
        if name not in known:
            hint = did_you_mean(name, known) or "; python -m vrb.train --show-config lists the fields"
            raise UsageError(f"--set {name}={_spelt(value)}: unknown config field {name!r}{hint}")
    values = {name: _as_declared(value, defaults[name]) for name, value in values.items()}
    if seeds is not None and SEED_AXIS in values:
        raise UsageError(f"--set {SEED_AXIS}={_spelt(values[SEED_AXIS])} and --seeds: give the seeds once")
    if seeds is not None and not seeds:
        raise UsageError("--seeds: expected at least one seed")
    axes = {name: [value] for name, value in values.items()}
    record: dict[str, Any] = {"set": values} if values else {}
    if seeds is not None:
        axes[SEED_AXIS] = record["seeds"] = list(dict.fromkeys(seeds))  # every block gets the seed axis
    grid = [
        {**block, **{name: axis for name, axis in axes.items() if name in block or name == SEED_AXIS}}
        for block in spec.grid
    ]
    changed = dataclasses.replace(spec, grid=grid, overrides=record)
    try:
        changed.trials()  # every trial must still be a valid config before anything starts
    except SpecError as exc:
        raise SpecError(f"{exc} (after the command line's {describe(record)})") from None
    return changed


def describe(record: Mapping[str, Any]) -> str:
    """The overrides as the command line spells them: ``--set epochs=40 --seeds 0 1``."""
    words = [f"--set {name}={_spelt(value)}" for name, value in record.get("set", {}).items()]
    if "seeds" in record:
        words.append("--seeds " + " ".join(map(str, record["seeds"])))
    return " ".join(words)


def _spelt(value: Any) -> str:
    """A value as ``--set`` takes it: strings bare, anything else as JSON (true, not True)."""
    return value if isinstance(value, str) else json.dumps(value)
