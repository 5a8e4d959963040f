"""Where runs live and what they start from: run folders that never collide, named presets, checkpoint paths,
the pretrained policies under ``pretrained/``.

A run folder is ``RUNS/ALGO-SIMULATOR-sSEED-YYYYmmdd-HHMMSS`` (a counter is added when two runs start in the
same second), so ``make train`` can be run again; ``latest_run`` finds the newest folder of the same name for
``--resume``. A preset is a YAML mapping of config fields under ``vrb/presets/`` (``ours``, ``convlab2``,
``gdpl_original``) or any YAML file; fields an algorithm does not have are left out for it, so one preset serves
every algorithm.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import yaml

from vrb.config import AlgoOptions, TrainConfig
from vrb.errors import UsageError

logger = logging.getLogger(__name__)

PRESETS_DIR = Path(__file__).parent / "presets"
PRETRAINED_DIR = Path(__file__).resolve().parents[1] / "pretrained"  # small policies shipped with the project
STAMP_FORMAT = "%Y%m%d-%H%M%S"


def run_name(cfg: TrainConfig) -> str:
    return f"{cfg.algo}-{cfg.simulator}-s{cfg.seed}"


def new_run_folder(root: Path, cfg: TrainConfig, now: float | None = None) -> Path:
    """A fresh folder name under ``root`` for this run: its name, a time stamp, and a counter if needed."""
    base = f"{run_name(cfg)}-{time.strftime(STAMP_FORMAT, time.localtime(now))}"
    folder, counter = root / base, 1
    while folder.exists():
        counter += 1
        folder = root / f"{base}-{counter}"
    return folder


def latest_run(root: Path, cfg: TrainConfig) -> Path:
    """The newest run folder of this algorithm, simulator and seed that holds a ``last.pt``."""
    candidates = sorted(
        (p for p in root.glob(f"{run_name(cfg)}-*") if (p / "last.pt").is_file()),
        key=lambda p: p.stat().st_mtime,
    )
    if not candidates:
        raise UsageError(
            f"--resume: no run folder {root}/{run_name(cfg)}-* holds a last.pt (nothing to resume)"
        )
    return candidates[-1]


def preset_names() -> list[str]:
    return sorted(p.stem for p in PRESETS_DIR.glob("*.yaml"))


def load_preset(name_or_path: str) -> dict[str, Any]:
    """The fields of a named preset (``vrb/presets/NAME.yaml``) or of a YAML file."""
    path = Path(name_or_path)
    if not path.is_file():
        path = PRESETS_DIR / f"{name_or_path}.yaml"
    if not path.is_file():
        raise UsageError(
            f"--config {name_or_path!r}: no such file, and no preset of that name ({preset_names()})"
        )
    try:
        values = yaml.safe_load(path.read_text())
    except (OSError, yaml.YAMLError) as exc:
        raise UsageError(f"--config {path}: not readable YAML ({exc})".replace("\n", " ")) from None
    if not isinstance(values, Mapping) or not all(isinstance(k, str) for k in values):
        raise UsageError(f"--config {path}: expected a mapping of config fields to values")
    return dict(values)


def fields_for(
    values: Mapping[str, Any], options: type[AlgoOptions], any_algorithm: set[str]
) -> dict[str, Any]:
    """A preset's fields that a run of this algorithm has; those of other algorithms are left out, a name no
    algorithm has is refused (a typo must not pass silently)."""
    known = set(TrainConfig.field_names()) | set(options.field_names())
    unknown = sorted(set(values) - known - any_algorithm)
    if unknown:
        raise UsageError(f"--config: unknown config field {unknown[0]!r}")
    left_out = sorted(set(values) - known)
    if left_out:
        logger.info("preset fields %s do not apply to this algorithm", left_out)
    return {k: v for k, v in values.items() if k in known}


def checkpoint_path(path: str | Path) -> Path:
    """A checkpoint file as given, or a run folder's ``best.pt``."""
    path = Path(path)
    return path / "best.pt" if path.is_dir() else path


def pretrained_names() -> list[str]:
    return sorted(p.parent.name for p in PRETRAINED_DIR.glob("*/policy.pt"))


def pretrained_path(name: str) -> Path:
    """``pretrained/NAME/policy.pt``: a policy trained with the defaults, to try without training."""
    path = PRETRAINED_DIR / name / "policy.pt"
    if not path.is_file():
        raise UsageError(f"--pretrained {name!r}: no such policy; expected one of {pretrained_names()}")
    return path
