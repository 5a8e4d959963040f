"""``gdpl``: PPO on a learned reward (Takanobu et al. 2019) — the reward estimator's machinery, which VRB's
bottleneck estimator reuses (``vrb.learners.vrb``), and GDPL's own AIRL estimator.

Both score a transition with the AIRL form f(s, a, s') = g(s, a) + gamma * h(s') - h(s) and give the policy
r = f(s, a, s') - log pi(a|s) (AIRL's entropy-regularised reward, with log pi summed over the 209 acts).

What ConvLab-2's GDPL estimator (policy/gdpl/estimator.py) actually does, reproduced by ``AIRLEstimator``:
- g: (s, a) -> 50 -> 1 and h: s -> 50 -> 1, ReLU MLPs; RMSprop, lr 1e-3.
- The loss is NOT AIRL's logistic discriminator loss: log pi never enters it. It is the critic loss
  mean f(policy) - mean f(expert), made well-posed by clipping every estimator weight to [-0.02, 0.02] after
  each step (a WGAN critic). Its BCE loss object and KL/annealing helpers are unused leftovers.
- One update: the epoch's policy samples are cut into len // 32 chunks (in rollout order; here shuffled),
  each paired with the next batch of 32 from a reshuffled expert loader (``ExpertSampler`` draws alike).
- Expert s' for the last turn of a dialogue is s itself (its loader's rule; the expert builder's concern).
- The reward is f - log pi_old with log pi computed before the PPO update, with the estimator already updated
  on this epoch's samples.

Each epoch, before PPO's update, ``LearnedReward`` trains the estimator on expert against negative transitions
and relabels the rollouts with r = env reward + coef * standardise(f - c log pi) (``learned_reward_coef``,
``reward_logpi_coef``; ``env_reward`` none leaves the learned reward alone, the papers' setting).
"""

from __future__ import annotations

import itertools
from abc import ABC, abstractmethod
from collections.abc import Callable
from typing import Any, cast

import torch
from torch import nn

from envs.multiwoz.vector import ACTION_DIM, STATE_DIM
from vrb.diagnostics import reward_parts
from vrb.expert import ExpertSampler
from vrb.learners import EstimatorOptions, GDPLOptions
from vrb.learners.ppo import PPOLearner
from vrb.loop import RunContext
from vrb.policy import mlp
from vrb.rollout import Transitions, shuffled_indices
from vrb.sampling import epoch_seeds

LogProbFn = Callable[[torch.Tensor, torch.Tensor], torch.Tensor]  # (states, actions) -> log pi(a|s) [batch]


class RewardEstimator(ABC):
    """Trained adversarially on expert vs policy transitions; turns policy transitions into rewards."""

    def __init__(
        self,
        net: nn.Module,
        *,
        lr: float,
        batch_size: int,
        generator: torch.Generator | None,
        device: torch.device | str = "cpu",
    ):
        self.net = net.to(device)  # before the optimiser takes its parameters
        self.optimizer = torch.optim.RMSprop(net.parameters(), lr=lr, foreach=True)
        self.batch_size = batch_size
        self.generator = generator

    def update(self, expert: Transitions, policy: Transitions) -> dict[str, float]:
        """One pass over the policy batch in minibatches, each against an equally sized expert minibatch."""
        steps = max(1, min(len(policy), len(expert)) // self.batch_size)
        policy_order = shuffled_indices(len(policy), self.generator, policy.states.device)
        expert_order = shuffled_indices(len(expert), self.generator, expert.states.device)
        totals: dict[str, float] = {}
        self.net.train()
        for policy_idx, expert_idx in zip(
            policy_order.tensor_split(steps), expert_order.tensor_split(steps), strict=True
        ):
            loss, stats = self.loss(expert.index(expert_idx), policy.index(policy_idx))
            self.optimizer.zero_grad(set_to_none=True)
            loss.backward()
            self.optimizer.step()
            self.after_step(stats)
            for key, value in stats.items():
                totals[key] = totals.get(key, 0.0) + value
        self.net.eval()
        return {key: total / steps for key, total in totals.items()}

    @torch.no_grad()
    def reward(
        self,
        states: torch.Tensor,
        actions: torch.Tensor,
        next_states: torch.Tensor,
        log_probs: torch.Tensor,
        logpi_coef: float = 1.0,
    ) -> torch.Tensor:
        """r = f(s, a, s') - c log pi(a|s), shape [batch]; c = 1 is AIRL's reward (GDPL, VRB)."""
        return self.score(states, actions, next_states) - logpi_coef * log_probs

    @abstractmethod
    def score(self, states: torch.Tensor, actions: torch.Tensor, next_states: torch.Tensor) -> torch.Tensor:
        """Deterministic f(s, a, s'), shape [batch]."""

    @abstractmethod
    def loss(self, expert: Transitions, policy: Transitions) -> tuple[torch.Tensor, dict[str, float]]:
        """The minibatch loss to minimise and the statistics to log."""

    def after_step(self, stats: dict[str, float]) -> None:  # noqa: B027 - optional hook
        """Runs after every optimiser step (weight clipping, multiplier update)."""

    def state_dict(self) -> dict[str, Any]:
        return {"net": self.net.state_dict(), "optimizer": self.optimizer.state_dict()}

    def load_state_dict(self, state: dict[str, Any]) -> None:
        self.net.load_state_dict(state["net"])
        self.optimizer.load_state_dict(state["optimizer"])


def pretrain_estimator(
    estimator: RewardEstimator,
    expert: ExpertSampler,
    sample_policy: Callable[[], Transitions],
    epochs: int,
) -> list[dict[str, float]]:
    """Fit the estimator to a fixed policy before RL (original GDPL pretrained it against the MLE policy).

    ``sample_policy`` returns a fresh batch of that policy's transitions for every epoch.
    """
    history = []
    for _ in range(epochs):
        policy = sample_policy()
        history.append(estimator.update(expert.sample(len(policy)), policy))
    return history


class LearnedReward:
    """One epoch's learned-reward step of VRB and GDPL: update the estimator on expert vs negative transitions,
    then relabel the rollouts with r = env reward + coef * standardise(f - c log pi).

    Negatives (``estimator_negatives``): ``rollout``, the epoch's policy transitions (the papers'); ``matched``,
    the policy's own decoded acts at expert states with the expert's s' (the states of both classes are then
    the same, so only the actions can tell them apart); ``both``. ``estimator_replay_epochs`` earlier epochs of
    rollouts join the rollout negatives, so the estimator does not forget what the policy did before.
    With ``env_reward`` none the learned reward is the policy's only reward (the papers' setting).
    """

    panel = "estimator"

    def __init__(
        self,
        estimator: RewardEstimator,
        expert: ExpertSampler,
        options: EstimatorOptions,
        env_reward: str,
        act: Callable[[torch.Tensor], torch.Tensor],
    ):
        self.estimator, self.expert, self.act = estimator, expert, act
        self.negatives_kind = options.estimator_negatives
        self.replay_epochs, self.updates = options.estimator_replay_epochs, options.estimator_updates
        self.logpi_coef, self.normalize = options.reward_logpi_coef, options.reward_normalize
        self.coef = options.learned_reward_coef
        self.with_env_reward = env_reward != "none"
        self.replay: list[Transitions] = []

    def negatives(self, rollout: Transitions) -> Transitions:
        parts = []
        if self.negatives_kind in ("rollout", "both"):
            parts += [rollout, *self.replay]
        if self.negatives_kind in ("matched", "both"):
            at_expert = self.expert.sample(len(rollout))
            parts.append(Transitions(at_expert.states, self.act(at_expert.states), at_expert.next_states))
        return Transitions(
            *(torch.cat(tensors) for tensors in zip(*(_fields(p) for p in parts), strict=True))
        )

    def relabel(self, buffer: Any) -> dict[str, float]:
        rollout = buffer.transitions()
        negatives = self.negatives(rollout)
        stats: dict[str, float] = {}
        for _ in range(self.updates):
            stats = self.estimator.update(self.expert.sample(len(negatives)), negatives)
        if self.replay_epochs:
            self.replay = [*self.replay, _compact(rollout)][-self.replay_epochs :]
        f = self.estimator.score(rollout.states, rollout.actions, rollout.next_states)
        log_probs = buffer.flat_log_probs()
        learned = f - self.logpi_coef * log_probs
        stats |= {"reward_mean": learned.mean().item(), "reward_std": learned.std().item()}
        stats |= reward_parts(f, log_probs, self.logpi_coef)
        if self.normalize:
            learned = (learned - learned.mean()) / (learned.std() + 1e-8)
        env = buffer.rewards.reshape(-1) if self.with_env_reward else torch.zeros_like(learned)
        buffer.set_rewards(env + self.coef * learned)
        return stats

    def state_dict(self) -> dict[str, Any]:
        return {
            "estimator": self.estimator.state_dict(),
            "replay": [[t.to(torch.uint8) for t in _fields(batch)] for batch in self.replay],
        }

    def load_state_dict(self, state: dict[str, Any]) -> None:
        self.estimator.load_state_dict(state["estimator"])
        device = self.expert.device  # a checkpoint's tensors are on the CPU; the rollouts on the run's device
        self.replay = [
            Transitions(*(t.to(device, torch.float32) for t in batch)) for batch in state["replay"]
        ]


def _fields(batch: Transitions) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    return batch.states, batch.actions, batch.next_states


def _compact(batch: Transitions) -> Transitions:
    return Transitions(*(t.clone() for t in _fields(batch)))


class AIRLRewardNet(nn.Module):
    """f(s, a, s') = g(s, a) + gamma * h(s') - h(s) with one-hidden-layer ReLU MLPs."""

    def __init__(self, state_dim: int, action_dim: int, hidden: int, gamma: float):
        super().__init__()
        self.gamma = gamma
        self.g = mlp([state_dim + action_dim, hidden, 1])
        self.h = mlp([state_dim, hidden, 1])

    def forward(self, states: torch.Tensor, actions: torch.Tensor, next_states: torch.Tensor) -> torch.Tensor:
        g = self.g(torch.cat([states, actions], -1))
        return (g + self.gamma * self.h(next_states) - self.h(states)).squeeze(-1)


class AIRLEstimator(RewardEstimator):
    """GDPL's estimator: critic loss mean f(policy) - mean f(expert) with weight clipping."""

    def __init__(
        self,
        state_dim: int,
        action_dim: int,
        *,
        hidden: int,
        gamma: float,
        lr: float,
        batch_size: int,
        weight_clip: float,
        generator: torch.Generator | None = None,
        device: torch.device | str = "cpu",
    ):
        super().__init__(
            AIRLRewardNet(state_dim, action_dim, hidden, gamma),
            lr=lr,
            batch_size=batch_size,
            generator=generator,
            device=device,
        )
        self.weight_clip = weight_clip

    def score(self, states: torch.Tensor, actions: torch.Tensor, next_states: torch.Tensor) -> torch.Tensor:
        return self.net(states, actions, next_states)

    def loss(self, expert: Transitions, policy: Transitions) -> tuple[torch.Tensor, dict[str, float]]:
        f_expert = self.net(expert.states, expert.actions, expert.next_states).mean()
        f_policy = self.net(policy.states, policy.actions, policy.next_states).mean()
        loss = f_policy - f_expert
        return loss, {"loss": loss.item(), "f_expert": f_expert.item(), "f_policy": f_policy.item()}

    @torch.no_grad()
    def after_step(self, stats: dict[str, float]) -> None:
        if not self.weight_clip:  # 0 reproduces ConvLab-2 and the original GDPL, whose clip loop never runs
            return
        for p in self.net.parameters():
            p.clamp_(-self.weight_clip, self.weight_clip)


class LearnedRewardLearner(PPOLearner):
    """PPO on r = env reward + coef * standardise(f - c log pi) of a reward estimator that ``make_estimator``
    builds (GDPL's here, VRB's in ``vrb.learners.vrb``)."""

    def __init__(self, ctx: RunContext):
        super().__init__(ctx)
        options = cast(EstimatorOptions, ctx.cfg.options)  # the algorithm's own (vrb.learners)
        self.estimator = self.make_estimator(options, ctx)
        self.reward = LearnedReward(
            self.estimator,
            self.expert_sampler,
            options,
            ctx.cfg.env_reward,
            lambda states: self.act(states, ctx.generator)[0],
        )

    def make_estimator(self, options: Any, ctx: RunContext) -> RewardEstimator:
        """The algorithm's own estimator, built after the policy (VRB's AIRL logit reads its log pi)."""
        raise NotImplementedError(f"{type(self).__name__} must build its reward estimator")

    def start(self) -> dict[str, Any]:
        """The policy's warm start, then ``estimator_pretrain_epochs`` of the estimator against it."""
        record = super().start()
        epochs = cast(EstimatorOptions, self.ctx.cfg.options).estimator_pretrain_epochs
        if epochs:
            rounds = itertools.count(1)

            def sample_start_policy() -> Transitions:
                seeds = epoch_seeds(self.ctx.cfg.seed, -next(rounds), self.ctx.cfg.num_envs)
                self.sampler.collect(self.act, seeds, self.ctx.generator)
                return self.buffer.transitions()

            history = pretrain_estimator(self.estimator, self.expert_sampler, sample_start_policy, epochs)
            for i, stats in enumerate(history):
                self.ctx.tb.scalars("estimator_pretrain", stats, i)
        return record


class GDPLLearner(LearnedRewardLearner):
    """``gdpl``: the learned reward of GDPL's AIRL estimator."""

    def make_estimator(self, options: GDPLOptions, ctx: RunContext) -> RewardEstimator:
        return AIRLEstimator(
            STATE_DIM,
            ACTION_DIM,
            hidden=options.estimator_hidden,
            gamma=ctx.cfg.gamma,
            lr=options.estimator_lr,
            batch_size=options.estimator_batch_size,
            weight_clip=options.estimator_weight_clip,
            generator=ctx.generator,
            device=ctx.cfg.device,
        )
