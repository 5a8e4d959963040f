"""vrb's own algorithms, declared: their config fields and where their code lives, one module each
(``vrb/learners/mle.py``, ``ppo.py``, ``gdpl.py``, ``vrb.py``), as each baseline is one file.

The declarations import no torch, so that a config is built and validated, and ``--help`` lists every field,
without it (``vrb.algorithms.make_config``); an algorithm's code is imported when a run asks for it, by its
``"module:attr"`` string. They are registered by name like any other algorithm, through the entry points of
``pyproject.toml`` (group ``vrb.algorithms``): ``vrb = "vrb.learners:VRB"`` beside ``acer =
"baselines.acer:ALGORITHM"``.

The fields form one family: cloning and decoding (every learner of the multi-label policy), PPO's update on
them, the reward estimator's training on that, and GDPL's or VRB's estimator last. The update's defaults
(minibatch 128, policy lr 2e-4, value lr 1e-4) were chosen by a 5-seed comparison of minibatches 32 / 64 /
128 / 256 with the learning rates scaled (experiments/results/learning/tried.md, step 5): 128 is where VRB
reaches both success >= 0.96 and inform F1 >= 0.80, at three quarters of 32's cost. ConvLab-2's 32 / 1e-4 /
5e-5 are in the ``convlab2`` and ``gdpl_original`` presets.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from vrb.algorithms import Algorithm
from vrb.config import (
    DECODER_NAMES,
    AlgoOptions,
    TrainConfig,
    boolean,
    choice,
    integer,
    layer_sizes,
    number,
    optional_path,
    param,
)


@dataclass(frozen=True)
class CloningOptions(AlgoOptions):
    """Behaviour cloning of the multi-label policy: the MLE row and the warm start of every learner using it."""

    policy_hidden: tuple[int, ...] = param(
        (100, 100), layer_sizes, "hidden layer sizes of the policy network"
    )
    pretrained_policy: Path | None = param(
        None, optional_path, "checkpoint whose policy starts the run (skips MLE)"
    )
    mle_epochs: int = param(40, integer(1), "epochs of behaviour cloning")
    mle_lr: float = param(1e-3, number(strict=True), "behaviour cloning's RMSprop learning rate")
    mle_weight_decay: float = param(1e-5, number(), "behaviour cloning's weight decay")
    mle_pos_weight: float = param(
        1.0, number(strict=True), "weight of an act's presence in the loss (ConvLab-2's 5 inflates every act)"
    )
    mle_batch_size: int = param(32, integer(1), "behaviour cloning's minibatch size")
    clone_cache: bool = param(
        True, boolean, "reuse the cloned start of an identical earlier cloning ($VRB_CACHE_DIR/clone)"
    )


@dataclass(frozen=True)
class DecodingOptions(AlgoOptions):
    """How a multi-label policy's 209 act probabilities become the acts said (``vrb.policy.DECODERS``)."""

    decoder: str = param(
        "expected", choice(*DECODER_NAMES), "acts from probabilities: rollouts, validation, evaluation"
    )
    rollout_decoder: str = param(
        "", choice("", *DECODER_NAMES), "rollouts only, if not the decoder ('sample': the original GDPL)"
    )
    empty_fallback: bool = param(True, boolean, "a turn with no act chosen says the most probable act")

    @property
    def rollout_decoding(self) -> str:
        return self.rollout_decoder or self.decoder


@dataclass(frozen=True)
class MLEOptions(CloningOptions, DecodingOptions):
    """``mle``: behaviour cloning alone."""


@dataclass(frozen=True)
class PPOOptions(CloningOptions, DecodingOptions):
    """``ppo``: the clipped PPO update of the cloned multi-label policy (and of every learner built on it)."""

    value_hidden: tuple[int, ...] = param((50, 50), layer_sizes, "hidden layer sizes of the value network")
    policy_lr: float = param(2e-4, number(strict=True), "the policy's RMSprop learning rate")
    value_lr: float = param(1e-4, number(strict=True), "the value network's Adam learning rate")
    gae_lambda: float = param(0.95, number(0, 1), "GAE's lambda")
    clip_coef: float = param(0.2, number(strict=True), "PPO's clip range epsilon")
    update_epochs: int = param(5, integer(1), "passes over the epoch's steps per update")
    minibatch_size: int = param(128, integer(1), "steps per gradient step")
    ent_coef: float = param(0.0, number(), "entropy bonus of the policy loss")
    target_kl: float = param(
        0.02, number(), "stop an update once a pass's mean approximate KL exceeds it (0: off)"
    )
    max_grad_norm: float = param(10.0, number(strict=True), "gradient-norm clip of every update")
    bc_coef: float = param(
        0.1, number(), "+ bc_coef * E_expert[-log pi(a|s)]: cloning kept alive in RL (0: off)"
    )


@dataclass(frozen=True)
class EstimatorOptions(PPOOptions):
    """What GDPL and VRB share: PPO on a learned reward, and the estimator's training."""

    estimator_lr: float = param(1e-3, number(strict=True), "the estimator's RMSprop learning rate")
    estimator_batch_size: int = param(32, integer(1), "expert and policy transitions per estimator step")
    estimator_hidden: int = param(50, integer(1), "hidden units of the estimator's networks")
    estimator_negatives: str = param(
        "rollout",
        choice("rollout", "matched", "both"),
        "negatives: rollouts, policy acts at expert states, both",
    )
    estimator_replay_epochs: int = param(0, integer(0), "earlier epochs of rollouts kept as extra negatives")
    estimator_updates: int = param(1, integer(1), "passes over the negatives per epoch")
    estimator_pretrain_epochs: int = param(
        0, integer(0), "estimator epochs against the cloned policy before RL"
    )
    reward_normalize: bool = param(True, boolean, "standardise each epoch's learned rewards")
    reward_logpi_coef: float = param(0.1, number(), "c in r = f - c log pi (1: AIRL's reward)")
    learned_reward_coef: float = param(1.0, number(), "weight of the learned reward beside the env's reward")


@dataclass(frozen=True)
class GDPLOptions(EstimatorOptions):
    """``gdpl``: GDPL's AIRL estimator, a weight-clipped critic."""

    estimator_weight_clip: float = param(
        0.02, number(), "clip every estimator weight to [-c, c] after each step (0: off, as ConvLab-2 ran)"
    )


@dataclass(frozen=True)
class VRBOptions(EstimatorOptions):
    """``vrb``: the variational reward estimator bottleneck."""

    estimator_logit: str = param(
        "f", choice("f", "airl"), "the discriminator's logit: f (Park et al.) or f - log pi"
    )
    z_dim: int = param(32, integer(1), "size of the bottleneck's latent z")
    ic: float = param(0.5, number(), "I_c: the bound on the bottleneck's KL")
    alpha_phi: float = param(1e-3, number(), "dual-ascent step of the Lagrange multiplier phi")
    phi0: float = param(0.0, number(), "phi's starting value")


def suspicious_settings(cfg: TrainConfig) -> list[str]:
    """Settings that are legal but probably not what was meant (as Stable-Baselines3 warns of a minibatch that
    does not divide the rollout): one sentence each, naming the fields; logged when a run starts."""
    found = []
    options = cfg.options
    if isinstance(options, PPOOptions):
        steps, batch = cfg.steps_per_epoch, options.minibatch_size
        if batch > steps:
            found.append(f"minibatch_size {batch} > steps_per_epoch {steps}: every update pass is one step")
        elif steps % batch:
            found.append(
                f"minibatch_size {batch} does not divide steps_per_epoch {steps}: each pass ends with a "
                f"minibatch of {steps % batch} steps"
            )
    if isinstance(options, EstimatorOptions) and options.estimator_batch_size > cfg.steps_per_epoch:
        found.append(
            f"estimator_batch_size {options.estimator_batch_size} > steps_per_epoch {cfg.steps_per_epoch}: "
            "the estimator sees fewer negatives a step than asked for"
        )
    if cfg.eval_every > cfg.epochs:
        found.append(
            f"eval_every {cfg.eval_every} > epochs {cfg.epochs}: only the start and the end are validated"
        )
    return found


MLE = Algorithm(
    "mle",
    "behaviour cloning of the corpus, nothing after",
    MLEOptions,
    learner="vrb.learners.mle:ClonedPolicy",
)
PPO = Algorithm(
    "ppo",
    "PPO on the env's reward (the user's, by default)",
    PPOOptions,
    learner="vrb.learners.ppo:PPOLearner",
)
GDPL = Algorithm(
    "gdpl",
    "PPO on GDPL's AIRL reward estimator (Takanobu et al. 2019)",
    GDPLOptions,
    learner="vrb.learners.gdpl:GDPLLearner",
    learns_reward=True,
)
VRB = Algorithm(
    "vrb",
    "PPO on the variational reward estimator bottleneck (Park et al. 2020)",
    VRBOptions,
    learner="vrb.learners.vrb:VRBLearner",
    learns_reward=True,
)
