"""One dataclass describes a whole run; it is saved in every checkpoint and shown as TensorBoard HParams.

Network sizes, learning rates and PPO's settings are ConvLab-2's GDPL/PPO/MLE ones for MultiWOZ
(policy/gdpl/config.json, policy/mle/multiwoz/config.json); the VRB bottleneck follows Park et al. (2020). The
defaults that depart from them (expert states, reward, decoder, pos_weight, the behaviour-cloning term, the
estimator's c and alpha_phi) are the ones measured in experiments/results/learning; the README names the
settings that reproduce ConvLab-2 and the original GDPL.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass
from typing import Any

CORE_ALGOS = ("vrb", "gdpl", "ppo", "mle")  # trained by vrb.train itself
BASELINE_ALGOS = ("acer", "aldm", "gp_mbcm")  # each trained by baselines/NAME.py's train(cfg, out, resume)
ALGOS = CORE_ALGOS + BASELINE_ALGOS
SIMULATORS = ("agenda", "vhus")
EXPERT_STATES = ("replayed", "corpus")
DECODER_NAMES = ("greedy", "sample", "expected")
ENV_REWARDS = ("user", "evaluator", "none")
SELECT_METRICS = ("paper_success", "success", "paper_inform_f1", "paper_match")
DEVICES = ("cpu", "cuda")


@dataclass(frozen=True)
class TrainConfig:
    algo: str = "vrb"
    simulator: str = "agenda"
    user_noise: float = 0.0  # probability of each corruption of the user's acts (envs.noise.NoisyUser)
    seed: int = 0
    device: str = "cpu"
    torch_threads: int = 1
    flush_denormal: bool = True  # treat floats below ~1e-38 as 0: optimiser states of rarely-on inputs decay
    # into denormals, which made the updates 3x slower; false reproduces runs made before this setting
    out_dir: str = "runs"
    data_dir: str = ""  # empty: envs.multiwoz.data.resolve_data_dir picks the folder
    pretrained_policy: str = (
        ""  # checkpoint whose policy weights start RL (GDPL's --load_path on an MLE model)
    )

    expert_states: str = "replayed"  # replayed through the env's DST, or the corpus annotation (ConvLab-2)

    # sampling and decoding (vrb.policy.DECODERS)
    decoder: str = "expected"  # rollouts, validation and vrb.evaluate (ConvLab-2's and GDPL's: greedy)
    rollout_decoder: str = (
        ""  # empty: the decoder; 'sample' with decoder 'greedy' is the original GDPL's choice
    )
    empty_fallback: bool = True  # a turn with no act chosen says the most probable act instead
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
    target_kl: float = 0.02  # > 0: stop a PPO update early once a round's mean approx. KL exceeds it (0: off)
    max_grad_norm: float = 10.0
    bc_coef: float = (
        0.1  # + bc_coef * E_expert[-log pi(a|s)]: behaviour cloning kept alive during RL (0: off)
    )
    policy_lr: float = 1e-4  # RMSprop
    value_lr: float = 5e-5  # Adam
    policy_hidden: tuple[int, ...] = (100, 100)
    value_hidden: tuple[int, ...] = (50, 50)

    # rewards: PPO learns from env_reward; vrb/gdpl from r = env_reward + learned_reward_coef * learned reward
    env_reward: str = "user"  # user (+80 / -40 / -1), evaluator (per-turn; farmable), none (vrb/gdpl: pure)
    learned_reward_coef: float = 1.0  # weight of the (standardised) learned reward beside the env reward

    # reward estimator (vrb, gdpl)
    estimator_lr: float = 1e-3  # RMSprop
    estimator_batch_size: int = 32
    estimator_hidden: int = 50
    estimator_weight_clip: float = (
        0.02  # GDPL clips every estimator weight to [-c, c] after each step (0: off)
    )
    estimator_logit: str = "f"  # VRB's discriminator logit: f (Park et al.) or airl (f - log pi)
    estimator_negatives: str = "rollout"  # rollout, matched (policy acts at expert states) or both
    estimator_replay_epochs: int = 0  # earlier epochs of rollouts kept as extra negatives
    estimator_updates: int = 1  # passes over the negatives per epoch
    estimator_pretrain_epochs: int = 0  # ConvLab-2 starts GDPL without estimator pretraining
    reward_normalize: bool = True  # standardise each epoch's learned rewards (see vrb.train.learned_rewards)
    reward_logpi_coef: float = (
        0.1  # r = f - c log pi; 1 is AIRL's (and GDPL's) reward, < 1 damps its entropy bonus
    )
    z_dim: int = 32
    ic: float = 0.5
    alpha_phi: float = 1e-3  # dual-ascent step of phi (1e-5 never binds: KL stays far above I_c)
    phi0: float = 0.0

    # behaviour cloning (mle, and the warm start of the RL learners)
    mle_epochs: int = 40
    mle_lr: float = 1e-3  # RMSprop
    mle_weight_decay: float = 1e-5
    mle_pos_weight: float = 1.0  # ConvLab-2's 5 inflates every act's probability: 8-11 acts a turn after RL
    mle_batch_size: int = 32

    # evaluation and model selection
    eval_every: int = 5
    eval_dialogues: int = 200
    select_metric: str = "paper_success"  # best.pt maximises this validation metric
    patience: int = 0  # stop after this many validations without a new best (0: never)

    # -- ACER baseline (baselines/acer.py; Wang et al. 2017) --
    acer_num_actions: int = 200  # summary actions: the most frequent corpus act combinations
    acer_replay_size: int = 32_768  # transitions kept for off-policy updates (whole epochs of them)
    acer_replay_ratio: int = 4  # off-policy updates per on-policy one
    acer_truncation: float = 10.0  # c: importance weights truncated at c; the bias correction does the rest
    acer_trust_region: bool = True
    acer_trust_region_delta: float = 1.0  # the paper's delta
    acer_average_decay: float = 0.99  # alpha of the average policy network
    acer_policy_lr: float = 1e-4  # RMSprop
    acer_q_lr: float = 1e-3  # Adam
    acer_ent_coef: float = 1e-3

    # -- GP-MBCM baseline (baselines/gp_mbcm.py; Gasic et al. 2015) --
    gp_num_actions: int = 30  # the most frequent corpus act combinations, plus "answer the requests"
    gp_length_scale: float = 3.0  # kernel exp(-hamming(b, b') / (2 l^2)) on the 0/1 state vectors
    gp_prior_mean: float = -20.0  # prior mean of Q: about the return of a dialogue failing at the turn limit
    gp_signal_var: float = 100.0  # prior variance of Q (returns span about -40..+40)
    gp_noise_var: float = 100.0  # sigma^2 of GP-SARSA's noise model
    gp_ald_threshold: float = 0.1  # approximate linear dependence, relative to gp_signal_var
    gp_max_dictionary: int = 100  # per committee member and summary action

    # ALDM baseline (baselines/aldm.py): a BiLSTM discriminator of whole dialogues rewards each session
    aldm_turn_dim: int = 64  # per-turn embedding of (user acts, system action)
    aldm_lstm_hidden: int = 64  # per direction
    aldm_lr: float = 1e-3  # Adam
    aldm_batch_sessions: int = 32  # policy sessions per discriminator step, paired with as many expert ones
    aldm_disc_epochs: int = 1  # passes over each epoch's finished policy sessions
    aldm_pretrain_epochs: int = 20  # extra passes before the first reward (against the MLE policy's sessions)

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

    @property
    def rollout_decoding(self) -> str:
        return self.rollout_decoder or self.decoder


_CHOICES = {
    "algo": ALGOS,
    "simulator": SIMULATORS,
    "expert_states": EXPERT_STATES,
    "decoder": DECODER_NAMES,
    "rollout_decoder": ("", *DECODER_NAMES),
    "env_reward": ENV_REWARDS,
    "estimator_logit": ("f", "airl"),
    "estimator_negatives": ("rollout", "matched", "both"),
    "select_metric": SELECT_METRICS,
}
_POSITIVE_INT = (
    "epochs",
    "steps_per_epoch",
    "num_envs",
    "update_epochs",
    "minibatch_size",
    "torch_threads",
    "estimator_batch_size",
    "estimator_hidden",
    "estimator_updates",
    "z_dim",
    "mle_epochs",
    "mle_batch_size",
    "eval_every",
)
_NON_NEGATIVE_INT = (
    "seed",
    "estimator_pretrain_epochs",
    "eval_dialogues",
    "patience",
    "estimator_replay_epochs",
)
_POSITIVE_FLOAT = (
    "policy_lr",
    "value_lr",
    "estimator_lr",
    "mle_lr",
    "max_grad_norm",
    "clip_coef",
    "mle_pos_weight",
)
_NON_NEGATIVE_FLOAT = (
    "ent_coef",
    "target_kl",
    "estimator_weight_clip",
    "reward_logpi_coef",
    "learned_reward_coef",
    "bc_coef",
    "ic",
    "alpha_phi",
    "phi0",
    "mle_weight_decay",
)
_UNIT_INTERVAL = ("gamma", "gae_lambda", "user_noise")
_STRINGS = ("out_dir", "data_dir", "pretrained_policy")
_HIDDEN = ("policy_hidden", "value_hidden")
# ALDM baseline fields
_POSITIVE_INT += ("aldm_turn_dim", "aldm_lstm_hidden", "aldm_batch_sessions", "aldm_disc_epochs")
_NON_NEGATIVE_INT += ("aldm_pretrain_epochs",)
_POSITIVE_FLOAT += ("aldm_lr",)
# ACER baseline fields
_POSITIVE_INT += ("acer_num_actions", "acer_replay_size", "acer_replay_ratio")
_POSITIVE_FLOAT += ("acer_truncation", "acer_trust_region_delta", "acer_policy_lr", "acer_q_lr")
_NON_NEGATIVE_FLOAT += ("acer_ent_coef",)
_UNIT_INTERVAL += ("acer_average_decay",)
_BOOLS = ("acer_trust_region", "reward_normalize", "empty_fallback", "flush_denormal")
# GP-MBCM baseline fields
_POSITIVE_INT += ("gp_num_actions", "gp_max_dictionary")
_POSITIVE_FLOAT += ("gp_length_scale", "gp_signal_var", "gp_noise_var")
_UNIT_INTERVAL += ("gp_ald_threshold",)


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
    for name in _BOOLS:
        if not isinstance(getattr(cfg, name), bool):
            _fail(name, getattr(cfg, name), "true or false")
    if not _is_number(cfg.gp_prior_mean):
        _fail("gp_prior_mean", cfg.gp_prior_mean, "a number")
    if cfg.algo not in ("vrb", "gdpl", "mle", "aldm") and cfg.env_reward == "none":
        _fail("env_reward", cfg.env_reward, f"'user' or 'evaluator': {cfg.algo} learns from the env's reward")
    if cfg.algo == "acer" and cfg.acer_replay_size < cfg.steps_per_epoch:
        _fail("acer_replay_size", cfg.acer_replay_size, f"at least steps_per_epoch ({cfg.steps_per_epoch})")
