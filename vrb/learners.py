"""The multi-label policy's learners: behaviour cloning (``mle``) and PPO on a reward (``ppo``, and with a
learned reward plugged in, ``gdpl``, ``vrb`` and the ALDM baseline).

One epoch of ``PolicyLearner``, as in the papers' algorithm box:
1. sample ``steps_per_epoch`` steps from fresh seeded dialogues, acting with the run's decoder;
2. (a reward learner) update itself on the epoch's transitions and relabel their rewards;
3. PPO update (with the behaviour-cloning term ``bc_coef``);
and the diagnostics that tell whether a learned reward is informative (``vrb.diagnostics``).
"""

from __future__ import annotations

import functools
import itertools
import logging
from typing import Any, Protocol, cast

import numpy as np
import torch

from envs.multiwoz.vector import ACTION_DIM, STATE_DIM
from vrb.agents import NeuralAgent
from vrb.checkpoint import Checkpoint, load_checkpoint, load_weights
from vrb.clone_cache import Entry, Records, code_digest, entry_for, reuse_or_clone
from vrb.config import CloningOptions, MLEOptions, TrainConfig
from vrb.diagnostics import decoding_stats, probe_auc
from vrb.expert import ExpertData, ExpertSampler
from vrb.learned_reward import LearnedReward
from vrb.learner import Panels, RunContext
from vrb.mle import act_scores, behaviour_cloning, behaviour_cloning_from_options
from vrb.options import EstimatorOptions, GDPLOptions, PPOOptions, VRBOptions
from vrb.policy import MultiLabelPolicy, ValueNet, mlp
from vrb.ppo import PPO
from vrb.reward import make_estimator, pretrain_estimator
from vrb.rollout import RolloutBuffer, shuffled_indices
from vrb.sampling import EpochSampler, epoch_seeds

logger = logging.getLogger(__name__)

MLE_HOLDOUT_FRACTION = 0.1  # of the training split's dialogues, for choosing the MLE epoch
# What the multi-label cloning reads of its options: every cloning field but the start's source and the cache
# switch (a field added to CloningOptions is keyed until it is named here).
CLONING_FIELDS = tuple(
    name for name in CloningOptions.field_names() if name not in ("pretrained_policy", "clone_cache")
)
# Estimator statistics shown under diagnostics/ (the rest stay under the estimator's own panel).
DIAGNOSTIC_KEYS = (
    "f_expert",
    "f_policy",
    "kl",
    "ic",
    "phi",
    "reward_f_mean",
    "reward_logpi_term_mean",
    "reward_logpi_share",
)


class RewardLearner(Protocol):
    """A learned reward plugged into ``PolicyLearner``: it relabels each epoch's rollouts before PPO.

    ``relabel`` may update itself on the buffer first (a discriminator, say); it returns statistics for the
    TensorBoard panel ``panel``. Its state is saved in every checkpoint and restored on ``--resume``.
    """

    panel: str

    def relabel(self, buffer: RolloutBuffer) -> dict[str, float]: ...

    def state_dict(self) -> dict[str, Any]: ...

    def load_state_dict(self, state: dict[str, Any]) -> None: ...


def clone_behaviour(policy: MultiLabelPolicy, ctx: RunContext, options: CloningOptions) -> dict[str, float]:
    """MLE on the training split (a dialogue-level hold-out picks the epoch); act scores on the test split. With
    ``clone_cache`` the start of an identical earlier cloning is reused (``vrb.clone_cache``): the same weights,
    generator, ``mle`` scalars and result as cloning here."""

    def clone() -> tuple[Records, dict[str, float]]:
        return _clone(policy, ctx.expert, ctx.test, options, ctx.generator)

    entry = clone_entry(policy, ctx, options) if options.clone_cache else None
    start = reuse_or_clone(entry, policy, ctx.generator, clone)
    for step, scalars in start.records:
        ctx.tb.scalars("mle", scalars, step)
    logger.info(
        "MLE on %s: test act precision %.3f recall %.3f F1 %.3f", ctx.expert.split, *start.result.values()
    )
    return start.result


def clone_entry(policy: MultiLabelPolicy, ctx: RunContext, options: CloningOptions) -> Entry:
    """The clone-cache entry of this run's multi-label cloning, as the policy and generator are now."""
    fields = {name: getattr(options, name) for name in CLONING_FIELDS}
    code = code_digest(
        _clone,
        behaviour_cloning_from_options,
        behaviour_cloning,
        act_scores,
        MultiLabelPolicy,
        mlp,
        shuffled_indices,
    )
    return entry_for("multilabel", ctx.cfg, ctx.data, ctx.expert.split, fields, code, policy, ctx.generator)


def _clone(
    policy: MultiLabelPolicy,
    expert: ExpertData,
    test: ExpertData,
    options: CloningOptions,
    generator: torch.Generator,
) -> tuple[Records, dict[str, float]]:
    """The cloning itself: the ``mle`` panel's records (one per epoch, then the test scores) and the result."""
    holdout = np.asarray(expert.dialogue_index) % round(1 / MLE_HOLDOUT_FRACTION) == 0
    history = behaviour_cloning_from_options(
        policy,
        expert.states[~holdout],
        expert.actions[~holdout],
        expert.states[holdout],
        expert.actions[holdout],
        options,
        generator,
    )
    records: Records = [(int(r["epoch"]), {k: v for k, v in r.items() if k != "epoch"}) for r in history]
    device = next(policy.parameters()).device
    with torch.no_grad():
        predicted = policy.greedy(torch.as_tensor(test.states, device=device))
        scores = act_scores(predicted, torch.as_tensor(test.actions, device=device))
    result = {"test_precision": scores.precision, "test_recall": scores.recall, "test_f1": scores.f1}
    return [*records, (len(history), result)], result


def warm_start(policy: MultiLabelPolicy, ctx: RunContext) -> dict[str, Any]:
    """The policy's start: weights from ``pretrained_policy``, else behaviour cloning (recorded as ``mle``)."""
    options: CloningOptions = ctx.cfg.options  # type: ignore[assignment]
    if options.pretrained_policy is not None:
        network = f"a policy of policy_hidden {list(options.policy_hidden)}"
        load_weights(policy, load_checkpoint(options.pretrained_policy), "policy", network)
        logger.info("policy starts from %s", options.pretrained_policy)
        return {"pretrained_policy": str(options.pretrained_policy)}
    return {"mle": clone_behaviour(policy, ctx, options)}


class ClonedPolicy:
    """``mle``: behaviour cloning of the multi-label policy, nothing after."""

    online = False

    def __init__(self, ctx: RunContext):
        cfg = ctx.cfg
        options = cast(MLEOptions, cfg.options)  # the algorithm's own options class (vrb.algorithms)
        self.ctx = ctx
        self.policy = MultiLabelPolicy(STATE_DIM, ACTION_DIM, options.policy_hidden).to(cfg.device)
        self.agent = NeuralAgent(self.policy, options.decoder, options.empty_fallback, cfg.seed)

    def start(self) -> dict[str, Any]:
        return warm_start(self.policy, self.ctx)

    def learn(self, epoch: int) -> Panels:
        raise RuntimeError("behaviour cloning has no learning epochs")

    def state_dict(self) -> dict[str, Any]:
        return {"policy": self.policy.state_dict()}

    def load_state_dict(self, state: dict[str, Any]) -> None:
        self.policy.load_state_dict(state["policy"])

    def close(self) -> None:
        pass


class PolicyLearner:
    """PPO on the env's reward, or on the rewards a ``RewardLearner`` relabels the rollouts with."""

    online = True

    def __init__(self, ctx: RunContext, reward: RewardLearner | None = None):
        cfg, options = ctx.cfg, cast(PPOOptions, ctx.cfg.options)  # the algorithm's own (vrb.algorithms)
        self.ctx, self.reward = ctx, reward
        self.policy = MultiLabelPolicy(STATE_DIM, ACTION_DIM, options.policy_hidden).to(cfg.device)
        self.value = ValueNet(STATE_DIM, options.value_hidden).to(cfg.device)
        self.act = functools.partial(
            self.policy.act, decoder=options.rollout_decoding, fallback=options.empty_fallback
        )
        self.expert_sampler = ExpertSampler(ctx.expert.to_transitions(cfg.device), ctx.generator)
        self.ppo = PPO.from_options(
            self.policy, self.value, options, cfg.gamma, ctx.generator, self.expert_sampler
        )
        self.agent = NeuralAgent(self.policy, options.decoder, options.empty_fallback, cfg.seed)
        self.sampler = EpochSampler(cfg, parallel=True)  # self.act: a copy of the policy per worker
        self.buffer = self.sampler.buffer

    def start(self) -> dict[str, Any]:
        return warm_start(self.policy, self.ctx)

    def learn(self, epoch: int) -> Panels:
        cfg = self.ctx.cfg
        episodes, perf = self.sampler.sample(self.act, epoch, self.ctx.generator)
        panels: Panels = {"perf": perf}
        diagnostics = decoding_stats(self.policy, self.buffer.transitions().states)
        if self.reward is not None:
            stats = self.reward.relabel(self.buffer)
            diagnostics |= {k: stats.pop(k) for k in DIAGNOSTIC_KEYS if k in stats}
            panels[self.reward.panel] = stats
        if (epoch + 1) % cfg.eval_every == 0:
            diagnostics["probe_auc"] = state_probe(self.ctx.expert, self.buffer, cfg.seed * 10_007 + epoch)
        panels["diagnostics"] = diagnostics
        panels["ppo"] = self.ppo.update(self.buffer)
        panels["rollout"] = episodes.summary()
        return panels

    def state_dict(self) -> dict[str, Any]:
        state = {
            "policy": self.policy.state_dict(),
            "value": self.value.state_dict(),
            "ppo": self.ppo.state_dict(),
            "expert_sampler": self.expert_sampler.state_dict(),
        }
        if self.reward is not None:
            state["reward_learner"] = self.reward.state_dict()
        return state

    def load_state_dict(self, state: dict[str, Any]) -> None:
        self.policy.load_state_dict(state["policy"])
        self.value.load_state_dict(state["value"])
        self.ppo.load_state_dict(state["ppo"])
        self.expert_sampler.load_state_dict(state["expert_sampler"])
        if self.reward is not None:
            self.reward.load_state_dict(state["reward_learner"])

    def close(self) -> None:
        self.sampler.close()


class LearnedRewardPolicy(PolicyLearner):
    """``gdpl`` and ``vrb``: PPO on r = env reward + coef * standardise(f - c log pi) of a reward estimator."""

    def __init__(self, ctx: RunContext):
        super().__init__(ctx)
        options = cast(GDPLOptions | VRBOptions, ctx.cfg.options)  # the algorithm's own (vrb.algorithms)
        self.estimator = make_estimator(
            options, ctx.cfg.gamma, STATE_DIM, ACTION_DIM, ctx.generator, self.policy.log_prob, ctx.cfg.device
        )
        self.reward = LearnedReward(
            self.estimator,
            self.expert_sampler,
            options,
            ctx.cfg.env_reward,
            lambda states: self.act(states, ctx.generator)[0],
        )

    def start(self) -> dict[str, Any]:
        record = super().start()
        epochs = cast(EstimatorOptions, self.ctx.cfg.options).estimator_pretrain_epochs
        if epochs:
            rounds = itertools.count(1)

            def sample_start_policy() -> Any:
                seeds = epoch_seeds(self.ctx.cfg.seed, -next(rounds), self.ctx.cfg.num_envs)
                self.sampler.collect(self.act, seeds, self.ctx.generator)
                return self.buffer.transitions()

            history = pretrain_estimator(self.estimator, self.expert_sampler, sample_start_policy, epochs)
            for i, stats in enumerate(history):
                self.ctx.tb.scalars("estimator_pretrain", stats, i)
        return record


def state_probe(expert: ExpertData, buffer: RolloutBuffer, seed: int) -> float:
    """``diagnostics.probe_auc`` on this epoch's states against as many expert states (its own generator, so
    the diagnostic never moves the training's random streams)."""
    generator = torch.Generator().manual_seed(seed)
    policy_states = buffer.transitions().states.cpu()
    rows = torch.randperm(len(expert.states), generator=generator)[: len(policy_states)]
    return probe_auc(torch.as_tensor(expert.states[rows.numpy()]), policy_states, generator)


def neural_agent(
    checkpoint: Checkpoint, cfg: TrainConfig, decoder: str | None, sample_seed: int
) -> NeuralAgent:
    """The multi-label policy a checkpoint holds, decoding as its run did unless ``decoder`` says otherwise
    (the agent loader of every algorithm that acts through ``MultiLabelPolicy``)."""
    options = cfg.options
    policy = MultiLabelPolicy(hidden_sizes=options.policy_hidden)  # type: ignore[attr-defined]
    load_weights(policy, checkpoint, "policy", f"a policy of policy_hidden {list(options.policy_hidden)}")  # type: ignore[attr-defined]
    return NeuralAgent(policy, decoder or options.decoder, options.empty_fallback, sample_seed)  # type: ignore[attr-defined]
