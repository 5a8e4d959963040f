"""One epoch's learned-reward step of GDPL and VRB: train the estimator, then relabel the rollouts' rewards."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import torch

from vrb.diagnostics import reward_parts
from vrb.expert import ExpertSampler
from vrb.options import EstimatorOptions
from vrb.reward import RewardEstimator
from vrb.rollout import Transitions


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
