"""``ppo``: the clipped PPO update of the multi-label policy on the env's reward, and the learner every
algorithm of that policy builds on (``gdpl`` and ``vrb`` plug a learned reward in, as the ALDM baseline does).

One epoch of ``PPOLearner``, as in the papers' algorithm box:
1. sample ``steps_per_epoch`` steps from fresh seeded dialogues, acting with the run's decoder
   (``vrb.sampling``);
2. (a reward learner) update itself on the epoch's transitions and relabel their rewards;
3. PPO update: GAE on the buffer's rewards (``vrb.rollout``), then ``update_epochs`` passes of shuffled
   minibatch steps with the behaviour-cloning term ``bc_coef``;
and the diagnostics that tell whether a learned reward is informative (``vrb.diagnostics``). Kept from
ConvLab-2: separate policy (RMSprop) and value (Adam) optimisers, advantages normalised once over the whole
batch, mean-squared-error value loss, gradient-norm clipping.
"""

from __future__ import annotations

import functools
from typing import Any, Protocol, cast

import torch
from torch import nn

from envs.multiwoz.vector import ACTION_DIM, STATE_DIM
from vrb.acting import NeuralAgent
from vrb.diagnostics import decoding_stats, probe_auc
from vrb.expert import ExpertData, ExpertSampler
from vrb.learners import PPOOptions
from vrb.learners.mle import warm_start
from vrb.loop import Panels, RunContext
from vrb.policy import MultiLabelPolicy, ValueNet
from vrb.rollout import RolloutBuffer, clipped_step
from vrb.sampling import EpochSampler

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
    """A learned reward plugged into ``PPOLearner``: it relabels each epoch's rollouts before PPO.

    ``relabel`` may update itself on the buffer first (a discriminator, say); it returns statistics for the
    TensorBoard panel ``panel``. Its state is saved in every checkpoint and restored on ``--resume``.
    """

    panel: str

    def relabel(self, buffer: RolloutBuffer) -> dict[str, float]: ...

    def state_dict(self) -> dict[str, Any]: ...

    def load_state_dict(self, state: dict[str, Any]) -> None: ...


def clipped_surrogate_loss(ratio: torch.Tensor, advantages: torch.Tensor, clip_coef: float) -> torch.Tensor:
    """PPO's pessimistic objective, negated for gradient descent."""
    unclipped = ratio * advantages
    clipped = torch.clamp(ratio, 1.0 - clip_coef, 1.0 + clip_coef) * advantages
    return -torch.min(unclipped, clipped).mean()


class PPO:
    """Clipped-surrogate update of a policy and its value function from one full RolloutBuffer."""

    def __init__(
        self,
        policy: MultiLabelPolicy,
        value: nn.Module,
        *,
        policy_lr: float,
        value_lr: float,
        gamma: float,
        gae_lambda: float,
        clip_coef: float,
        update_epochs: int,
        minibatch_size: int,
        ent_coef: float,
        max_grad_norm: float,
        target_kl: float = 0.0,
        bc_coef: float = 0.0,
        expert: Any = None,
        generator: torch.Generator | None = None,
    ):
        self.policy, self.value = policy, value
        self.policy_optimizer = torch.optim.RMSprop(policy.parameters(), lr=policy_lr, foreach=True)
        self.value_optimizer = torch.optim.Adam(value.parameters(), lr=value_lr, foreach=True)
        self.gamma, self.gae_lambda, self.clip_coef = gamma, gae_lambda, clip_coef
        self.update_epochs, self.minibatch_size = update_epochs, minibatch_size
        self.ent_coef, self.max_grad_norm, self.target_kl = ent_coef, max_grad_norm, target_kl
        self.generator = generator
        if bc_coef and expert is None:
            raise ValueError(f"bc_coef = {bc_coef}: the behaviour-cloning term needs expert transitions")
        self.bc_coef, self.expert = bc_coef, expert

    @classmethod
    def from_options(
        cls,
        policy: MultiLabelPolicy,
        value: nn.Module,
        options: PPOOptions,
        gamma: float,
        generator: torch.Generator | None = None,
        expert: Any = None,
    ) -> PPO:
        return cls(
            policy,
            value,
            policy_lr=options.policy_lr,
            value_lr=options.value_lr,
            gamma=gamma,
            gae_lambda=options.gae_lambda,
            clip_coef=options.clip_coef,
            update_epochs=options.update_epochs,
            minibatch_size=options.minibatch_size,
            ent_coef=options.ent_coef,
            max_grad_norm=options.max_grad_norm,
            target_kl=options.target_kl,
            bc_coef=options.bc_coef,
            expert=expert,
            generator=generator,
        )

    def update(self, buffer: RolloutBuffer) -> dict[str, float]:
        """GAE on the buffer's rewards, then K rounds of shuffled minibatch steps; returns mean statistics."""
        buffer.compute_advantages(self.value, self.gamma, self.gae_lambda)
        states, actions = buffer.flat("states"), buffer.flat("actions")
        old_log_probs, returns = buffer.flat("log_probs"), buffer.flat("returns")
        advantages = buffer.flat("advantages")
        advantages = (advantages - advantages.mean()) / (advantages.std() + 1e-8)

        totals: dict[str, float] = dict.fromkeys(
            ("policy_loss", "value_loss", "entropy", "approx_kl", "clip_fraction", "bc_loss"), 0.0
        )
        steps = rounds = 0
        for rounds in range(1, self.update_epochs + 1):  # noqa: B007 - the count of rounds run is logged
            round_kl = []
            for idx in buffer.minibatches(self.minibatch_size, self.generator):
                stats = self._minibatch_step(
                    states[idx], actions[idx], old_log_probs[idx], advantages[idx], returns[idx]
                )
                for key, value in stats.items():
                    totals[key] += value
                round_kl.append(stats["approx_kl"])
                steps += 1
            if self.target_kl and sum(round_kl) / len(round_kl) > self.target_kl:
                break  # the policy moved far enough from the one that sampled the data
        result = {key: total / steps for key, total in totals.items()}
        result["update_rounds"] = rounds
        result["explained_variance"] = _explained_variance(buffer.flat("values"), returns)
        return result

    def _minibatch_step(
        self,
        states: torch.Tensor,
        actions: torch.Tensor,
        old_log_probs: torch.Tensor,
        advantages: torch.Tensor,
        returns: torch.Tensor,
    ) -> dict[str, float]:
        log_probs, entropy = self.policy.log_prob_and_entropy(states, actions)
        log_ratio = log_probs - old_log_probs
        ratio = log_ratio.exp()
        policy_loss = clipped_surrogate_loss(ratio, advantages, self.clip_coef)
        entropy_mean = entropy.mean()
        loss = policy_loss - self.ent_coef * entropy_mean
        bc_loss = torch.zeros((), device=states.device)
        if self.bc_coef:
            demo = self.expert.sample(len(states))
            bc_loss = -self.policy.log_prob(demo.states, demo.actions).mean()
            loss = loss + self.bc_coef * bc_loss
        clipped_step(self.policy_optimizer, self.policy, loss, self.max_grad_norm)

        value_loss = (self.value(states) - returns).pow(2).mean()
        clipped_step(self.value_optimizer, self.value, value_loss, self.max_grad_norm)

        with torch.no_grad():
            approx_kl = (
                (ratio - 1.0) - log_ratio
            ).mean()  # Schulman's low-variance estimator of KL(old||new)
            clip_fraction = ((ratio - 1.0).abs() > self.clip_coef).float().mean()
        return {
            "policy_loss": policy_loss.item(),
            "value_loss": value_loss.item(),
            "entropy": entropy_mean.item(),
            "approx_kl": approx_kl.item(),
            "clip_fraction": clip_fraction.item(),
            "bc_loss": bc_loss.item(),
        }

    def state_dict(self) -> dict[str, Any]:
        return {
            "policy_optimizer": self.policy_optimizer.state_dict(),
            "value_optimizer": self.value_optimizer.state_dict(),
        }

    def load_state_dict(self, state: dict[str, Any]) -> None:
        self.policy_optimizer.load_state_dict(state["policy_optimizer"])
        self.value_optimizer.load_state_dict(state["value_optimizer"])


def _explained_variance(predictions: torch.Tensor, targets: torch.Tensor) -> float:
    """1 - Var(target - prediction) / Var(target); 1 is perfect, <= 0 is no better than a constant."""
    target_var = targets.var()
    if target_var == 0:
        return float("nan")
    return (1.0 - (targets - predictions).var() / target_var).item()


class PPOLearner:
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

    def learn_epoch(self, epoch: int) -> Panels:
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


def state_probe(expert: ExpertData, buffer: RolloutBuffer, seed: int) -> float:
    """``diagnostics.probe_auc`` on this epoch's states against as many expert states (its own generator, so
    the diagnostic never moves the training's random streams)."""
    generator = torch.Generator().manual_seed(seed)
    policy_states = buffer.transitions().states.cpu()
    rows = torch.randperm(len(expert.states), generator=generator)[: len(policy_states)]
    return probe_auc(torch.as_tensor(expert.states[rows.numpy()]), policy_states, generator)
