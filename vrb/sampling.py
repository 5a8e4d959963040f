"""Rollouts: a vector of dialogue environments stepped by a multi-label policy into a RolloutBuffer.

Every epoch starts fresh dialogues whose seeds derive from (run seed, epoch), so an epoch's data depends only on
the policy and those numbers: a resumed run samples exactly what the uninterrupted one would have.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field

import gymnasium as gym
import numpy as np
import torch
from gymnasium.vector import AutoresetMode

from envs.dialogue_env import DialogueEnv
from envs.multiwoz.evaluator import DialogueMetrics
from vrb.ppo import RolloutBuffer

# states, generator -> (0/1 actions [n, 209], their log-probabilities [n]): a policy's decoded act
ActFn = Callable[[torch.Tensor, torch.Generator], tuple[torch.Tensor, torch.Tensor]]
SEED_STRIDE = 1_000_003  # dialogue-seed blocks of different (run, epoch) pairs never overlap in practice


def make_vector_env(
    simulator: str,
    num_envs: int,
    *,
    reward_mode: str,
    data_dir: str | None = None,
    asynchronous: bool = False,
    user_noise: float = 0.0,
) -> gym.vector.VectorEnv:
    """``num_envs`` dialogue environments that reset themselves in the step that ends a dialogue."""
    factories = [
        lambda: DialogueEnv(simulator=simulator, reward_mode=reward_mode, data_dir=data_dir or None,
                            user_noise=user_noise)
        for _ in range(num_envs)
    ]
    vector_cls = gym.vector.AsyncVectorEnv if asynchronous else gym.vector.SyncVectorEnv
    return vector_cls(factories, autoreset_mode=AutoresetMode.SAME_STEP)


def epoch_seeds(run_seed: int, epoch: int, num_envs: int) -> list[int]:
    base = (run_seed * 10_007 + epoch) * SEED_STRIDE % (2**31 - num_envs)
    return [base + i for i in range(num_envs)]


@dataclass
class EpisodeLog:
    """What the dialogues finished during one collection looked like (for logging, not learning)."""

    metrics: list[DialogueMetrics] = field(default_factory=list)
    eval_returns: list[float] = field(default_factory=list)

    def summary(self) -> dict[str, float]:
        if not self.metrics:
            return {"dialogues": 0.0}
        mean = lambda key: float(np.mean([getattr(m, key) for m in self.metrics]))  # noqa: E731
        return {
            "dialogues": float(len(self.metrics)),
            "success": mean("success"),
            "paper_success": mean("paper_success"),
            "rounds": mean("rounds"),
            "eval_return": float(np.mean(self.eval_returns)),
        }


def collect(
    vec_env: gym.vector.VectorEnv,
    act: ActFn,
    buffer: RolloutBuffer,
    seeds: list[int],
    generator: torch.Generator,
) -> EpisodeLog:
    """Fill ``buffer`` with fresh dialogues started from ``seeds``, acting by ``act`` (a policy's ``act`` with
    its decoder bound); s' of a finished step is its final state."""
    buffer.reset()
    log = EpisodeLog()
    observations, _ = vec_env.reset(seed=seeds)
    running_return = np.zeros(vec_env.num_envs)
    device = buffer.states.device
    while not buffer.full:
        states = torch.as_tensor(observations, dtype=torch.float32, device=device)
        actions, log_probs = act(states, generator)
        next_observations, rewards, terminated, truncated, infos = vec_env.step(
            actions.to(torch.int8).cpu().numpy()
        )
        done = terminated | truncated
        true_next = next_observations.copy()
        step_eval_reward = np.asarray(infos["eval_reward"], dtype=float)
        for i in np.flatnonzero(done):
            final_info = infos["final_info"]
            true_next[i] = infos["final_obs"][i]
            step_eval_reward[i] = final_info["eval_reward"][i]
            log.metrics.append(final_info["metrics"][i])
        running_return += step_eval_reward
        for i in np.flatnonzero(done):
            log.eval_returns.append(float(running_return[i]))
            running_return[i] = 0.0
        buffer.add(states, actions, true_next, log_probs, rewards, terminated, truncated)
        observations = next_observations
    return log
