"""One dataclass describes a whole run; it is saved in every checkpoint and shown as TensorBoard HParams.

Defaults are ConvLab-2's GDPL/PPO/MLE settings for MultiWOZ (policy/gdpl/config.json, policy/mle/multiwoz/
config.json) plus the VRB bottleneck defaults of Park et al. (2020).
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass
from typing import Any

CORE_ALGOS = ("vrb", "gdpl", "ppo", "mle")  # trained by vrb.train itself
BASELINE_ALGOS = ("acer", "aldm", "gp_mbcm")  # each trained by baselines/NAME.py's train(cfg, out, resume)
ALGOS = CORE_ALGOS + BASELINE_ALGOS
SIMULATORS = ("agenda", "vhus")
DEVICES = ("cpu", "cuda")


@dataclass(frozen=True)
class TrainConfig:
    algo: str = "vrb"
    simulator: str = "agenda"
    seed: int = 0
    device: str = "cpu"
    torch_threads: int = 1
    out_dir: str = "runs"
    data_dir: str = ""  # empty: envs.multiwoz.data.resolve_data_dir picks the folder
    pretrained_policy: str = (
        ""  # checkpoint whose policy weights start RL (GDPL's --load_path on an MLE model)
    )

    # sampling
    epochs: int = 200
    steps_per_epoch: int = 1024
    num_envs: int = 8

    # PPO (shared by vrb, gdpl, ppo)
    gamma: float = 0.99
    gae_lambda: float = 0.95
    clip_coef: float = 0.2
    update_epochs: int = 5
    minibatch_size: int = 32
    ent_coef: float = 0.0
    max_grad_norm: float = 10.0
    policy_lr: float = 1e-4  # RMSprop
    value_lr: float = 5e-5  # Adam
    policy_hidden: tuple[int, ...] = (100, 100)
    value_hidden: tuple[int, ...] = (50, 50)

    # reward estimator (vrb, gdpl)
    estimator_lr: float = 1e-3  # RMSprop
    estimator_batch_size: int = 32
    estimator_hidden: int = 50
    estimator_weight_clip: float = 0.02  # GDPL clips every estimator weight to [-c, c] after each step
    estimator_pretrain_epochs: int = 0  # ConvLab-2 starts GDPL without estimator pretraining
    z_dim: int = 32
    ic: float = 0.5
    alpha_phi: float = 1e-5
    phi0: float = 0.0

    # behaviour cloning (mle, and the warm start of the RL learners)
    mle_epochs: int = 16
    mle_lr: float = 1e-3  # RMSprop
    mle_weight_decay: float = 1e-5
    mle_pos_weight: float = 5.0
    mle_batch_size: int = 32

    # evaluation
    eval_every: int = 5
    eval_dialogues: int = 100

    def __post_init__(self) -> None:
        _validate(self)

    def to_dict(self) -> dict[str, Any]:
        """Plain JSON/YAML-able values (tuples become lists)."""
        out = {}
        for f in dataclasses.fields(self):
            value = getattr(self, f.name)
            out[f.name] = list(value) if isinstance(value, tuple) else value
        return out

    @classmethod
    def from_dict(cls, values: dict[str, Any]) -> TrainConfig:
        known = {f.name for f in dataclasses.fields(cls)}
        unknown = sorted(set(values) - known)
        if unknown:
            raise ValueError(f"unknown config field {unknown[0]!r}; expected one of {sorted(known)}")
        kwargs = {k: tuple(v) if isinstance(v, list) else v for k, v in values.items()}
        return cls(**kwargs)

    def replace(self, **changes: Any) -> TrainConfig:
        return self.from_dict({**self.to_dict(), **changes})

    def hparams(self) -> dict[str, int | float | str | bool]:
        """Flat scalars for TensorBoard HParams (hidden sizes as '100x100')."""
        return {k: "x".join(map(str, v)) if isinstance(v, list) else v for k, v in self.to_dict().items()}

    @property
    def steps_per_env(self) -> int:
        return self.steps_per_epoch // self.num_envs

    @property
    def learns_reward(self) -> bool:
        return self.algo in ("vrb", "gdpl")


_CHOICES = {"algo": ALGOS, "simulator": SIMULATORS}
_POSITIVE_INT = (
    "epochs",
    "steps_per_epoch",
    "num_envs",
    "update_epochs",
    "minibatch_size",
    "torch_threads",
    "estimator_batch_size",
    "estimator_hidden",
    "z_dim",
    "mle_epochs",
    "mle_batch_size",
    "eval_every",
)
_NON_NEGATIVE_INT = ("seed", "estimator_pretrain_epochs", "eval_dialogues")
_POSITIVE_FLOAT = (
    "policy_lr",
    "value_lr",
    "estimator_lr",
    "mle_lr",
    "max_grad_norm",
    "clip_coef",
    "estimator_weight_clip",
    "mle_pos_weight",
)
_NON_NEGATIVE_FLOAT = ("ent_coef", "ic", "alpha_phi", "phi0", "mle_weight_decay")
_UNIT_INTERVAL = ("gamma", "gae_lambda")
_STRINGS = ("out_dir", "data_dir", "pretrained_policy")
_HIDDEN = ("policy_hidden", "value_hidden")


def _fail(name: str, value: Any, expected: str) -> None:
    raise ValueError(f"config field {name!r} = {value!r}: expected {expected}")


def _is_int(value: Any) -> bool:
    return isinstance(value, int) and not isinstance(value, bool)


def _is_number(value: Any) -> bool:
    return isinstance(value, int | float) and not isinstance(value, bool)


def _validate(cfg: TrainConfig) -> None:
    for name, choices in _CHOICES.items():
        if getattr(cfg, name) not in choices:
            _fail(name, getattr(cfg, name), f"one of {choices}")
    device = cfg.device
    if not isinstance(device, str) or device.split(":")[0] not in DEVICES:
        _fail("device", device, "'cpu', 'cuda' or 'cuda:N'")
    for name in _POSITIVE_INT:
        value = getattr(cfg, name)
        if not _is_int(value) or value <= 0:
            _fail(name, value, "an integer > 0")
    for name in _NON_NEGATIVE_INT:
        value = getattr(cfg, name)
        if not _is_int(value) or value < 0:
            _fail(name, value, "an integer >= 0")
    for name in _POSITIVE_FLOAT:
        value = getattr(cfg, name)
        if not _is_number(value) or value <= 0:
            _fail(name, value, "a number > 0")
    for name in _NON_NEGATIVE_FLOAT:
        value = getattr(cfg, name)
        if not _is_number(value) or value < 0:
            _fail(name, value, "a number >= 0")
    for name in _UNIT_INTERVAL:
        value = getattr(cfg, name)
        if not _is_number(value) or not 0 <= value <= 1:
            _fail(name, value, "a number in [0, 1]")
    for name in _STRINGS:
        if not isinstance(getattr(cfg, name), str):
            _fail(name, getattr(cfg, name), "a string")
    for name in _HIDDEN:
        value = getattr(cfg, name)
        if not isinstance(value, tuple) or not value or not all(_is_int(v) and v > 0 for v in value):
            _fail(name, value, "a non-empty list of integers > 0")
    if cfg.steps_per_epoch % cfg.num_envs:
        _fail("steps_per_epoch", cfg.steps_per_epoch, f"a multiple of num_envs ({cfg.num_envs})")
