"""The rollout layer: what on-policy data is and how it is gathered, beneath any one update rule.

It sits below the learners so that data loading (``vrb.expert``), behaviour cloning, the reward estimators and
the non-PPO baselines share these names without importing PPO:

- ``Transitions``: a flat (s, a, s') batch (the expert corpus, an epoch's rollouts);
- ``shuffled_indices``: the permutation of every minibatch loop; ``clipped_step``: every learner's gradient step;
- ``RolloutBuffer``: one epoch, [num_steps, num_envs], with GAE on it (``compute_gae``);
- ``roll_out``: the one loop that steps a ``DialogueVector`` with a policy's act. The in-process sampler
  (``vrb.sampling.collect``) runs it on every environment, a sampling worker (``vrb.workers``) on its block;
  either way it returns a ``Share`` that ``RolloutBuffer.fill`` writes in, so the two paths cannot drift apart.

GAE differs from ConvLab-2's on purpose:
- it stops at every episode end. ConvLab-2 stored dialogues back to back and only cut at ``done``, so a
  dialogue cut by the turn limit leaked advantages from the next, unrelated dialogue. Here a terminated step
  does not bootstrap, a truncated step bootstraps from V(s'), and neither carries advantages across;
- value targets are the GAE(lambda) returns A + V (CleanRL/SB3), not ConvLab-2's Monte-Carlo returns.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import numpy as np
import torch
from torch import nn

from envs.multiwoz.vector import ACTION_DIM, STATE_DIM
from vrb.policy import draw_device

if TYPE_CHECKING:  # types only: the rollout layer itself builds no environment
    from envs.multiwoz.evaluator import DialogueMetrics
    from vrb.dialogue_vector import ActFn, DialogueVector

# The fields one step writes, in ``RolloutBuffer.add``'s argument order (the rest are computed from them).
STEP_FIELDS = ("states", "actions", "next_states", "log_probs", "rewards", "terminated", "truncated")


@dataclass(frozen=True)
class Transitions:
    """A flat batch of (s, a, s'): what a reward estimator sees, from the expert corpus or from rollouts."""

    states: torch.Tensor
    actions: torch.Tensor
    next_states: torch.Tensor

    def __len__(self) -> int:
        return self.states.shape[0]

    def index(self, idx: torch.Tensor) -> Transitions:
        return Transitions(self.states[idx], self.actions[idx], self.next_states[idx])


@dataclass
class Share:
    """Some environments' steps of an epoch as compact arrays: cheap to pickle from a worker, and the one form
    both sampling paths hand to ``RolloutBuffer.fill``."""

    start: int  # the vector index of the first environment
    states: np.ndarray  # [T, k, 340] int8
    actions: np.ndarray  # [T, k, 209] int8 (what the environments were sent)
    next_states: np.ndarray  # [T, k, 340] int8
    log_probs: np.ndarray  # [T, k] float32
    rewards: np.ndarray  # [T, k] float64 (the env's rewards, rounded to float32 only in the buffer)
    terminated: np.ndarray  # [T, k] bool
    truncated: np.ndarray  # [T, k] bool
    finished: list[tuple[int, int, DialogueMetrics, float]]  # (step, env index, metrics, evaluator return)
    generator_state: torch.Tensor  # the generator after the steps (workers' copies must agree)

    @property
    def num_envs(self) -> int:
        return self.states.shape[1]


def roll_out(
    vec_env: DialogueVector,
    act: ActFn,
    seeds: Sequence[int],
    steps: int,
    generator: torch.Generator,
    *,
    start: int = 0,
    num_envs: int | None = None,
    device: torch.device | str = "cpu",
) -> Share:
    """``steps`` steps of fresh dialogues from ``seeds``, ``vec_env`` being the environments ``start ..
    start + k`` of a ``num_envs`` vector (default: all of it); s' of a finished step is its final state.

    ``act`` always sees the whole [num_envs, 340] batch on ``device`` (zeros in rows not stepped here) and, when
    ``vec_env`` is a strict part, decodes its ``rows`` only, so a block's acts and draws are those of the whole
    vector (``vrb.workers``' rule); for the whole vector it is called without ``rows``, as any act allows."""
    k = vec_env.num_envs
    num_envs = k if num_envs is None else num_envs
    rows = slice(start, start + k)
    part = {} if k == num_envs else {"rows": rows}
    states = np.empty((steps, k, STATE_DIM), dtype=np.int8)
    actions = np.empty((steps, k, ACTION_DIM), dtype=np.int8)
    next_states = np.empty_like(states)
    log_probs = np.empty((steps, k), dtype=np.float32)
    rewards = np.empty((steps, k))
    terminated = np.empty((steps, k), dtype=bool)
    truncated = np.empty((steps, k), dtype=bool)
    finished = []
    observations = vec_env.reset(list(seeds))
    running_return = np.zeros(k)
    for t in range(steps):
        states[t] = observations
        own = torch.as_tensor(observations, dtype=torch.float32, device=device)
        if part:
            batch = torch.zeros(num_envs, STATE_DIM, device=device)
            batch[rows] = own
        else:
            batch = own
        decoded, log_prob = act(batch, generator, **part)
        actions[t] = decoded.to(torch.int8).cpu().numpy()
        log_probs[t] = log_prob.cpu().numpy()
        step = vec_env.step(actions[t])
        next_states[t], rewards[t] = step.next_states, step.rewards
        terminated[t], truncated[t] = step.terminated, step.truncated
        running_return += step.eval_rewards
        for i, metrics in step.finished.items():
            finished.append((t, start + i, metrics, float(running_return[i])))
            running_return[i] = 0.0
        observations = step.observations
    return Share(
        start,
        states,
        actions,
        next_states,
        log_probs,
        rewards,
        terminated,
        truncated,
        finished,
        generator.get_state(),
    )


class RolloutBuffer:
    """Fixed-size [num_steps, num_envs] storage of one epoch of interaction.

    ``next_states`` holds the true s' of each step (for an auto-reset vector env: the final observation of
    a finished episode, not the first of the next one), so V(s') needs no look-ahead into the buffer.
    Callers go through its methods (``add``/``fill`` to write, ``flat``/``minibatches`` to read), never its
    step counter, so the buffer alone decides when it is full.
    """

    def __init__(
        self,
        num_steps: int,
        num_envs: int,
        state_dim: int,
        action_dim: int,
        device: torch.device | str = "cpu",
    ):
        self.num_steps, self.num_envs = num_steps, num_envs

        def zeros(*feature_dims: int) -> torch.Tensor:
            return torch.zeros(num_steps, num_envs, *feature_dims, device=device)

        self.states = zeros(state_dim)
        self.actions = zeros(action_dim)
        self.next_states = zeros(state_dim)
        self.log_probs = zeros()
        self.rewards = zeros()
        self.terminated = zeros()
        self.truncated = zeros()
        self.values = zeros()
        self.next_values = zeros()
        self.advantages = zeros()
        self.returns = zeros()
        self.step = 0

    def __len__(self) -> int:
        return self.num_steps * self.num_envs

    @property
    def full(self) -> bool:
        return self.step == self.num_steps

    @property
    def device(self) -> torch.device:
        return self.states.device

    def reset(self) -> None:
        self.step = 0

    def add(
        self,
        states: Any,
        actions: Any,
        next_states: Any,
        log_probs: Any,
        rewards: Any,
        terminated: Any,
        truncated: Any,
    ) -> None:
        """One vector-env step; every argument has a leading num_envs dimension (tensors or numpy arrays)."""
        if self.full:
            raise IndexError(
                f"rollout buffer is full ({self.num_steps} steps x {self.num_envs} envs); reset() it"
            )
        t = self.step
        values = (states, actions, next_states, log_probs, rewards, terminated, truncated)
        for name, value in zip(STEP_FIELDS, values, strict=True):
            target = getattr(self, name)
            target[t] = torch.as_tensor(value, dtype=target.dtype, device=target.device)
        self.step += 1

    def fill(self, shares: Sequence[Share]) -> None:
        """The whole epoch from shares that tile the environments (one per sampling process); full after."""
        covered = sorted((share.start, share.start + share.num_envs) for share in shares)
        if [start for start, _ in covered] != [0, *(stop for _, stop in covered[:-1])] or (
            covered[-1][1] != self.num_envs
        ):
            raise ValueError(f"shares cover environments {covered}, not 0 .. {self.num_envs}")
        self.reset()
        for share in shares:
            self._write_share(share)
        self.step = self.num_steps

    def _write_share(self, share: Share) -> None:
        if share.states.shape[0] != self.num_steps:
            raise ValueError(f"a share of {share.states.shape[0]} steps for a {self.num_steps}-step buffer")
        rows = slice(share.start, share.start + share.num_envs)
        for name in STEP_FIELDS:
            target = getattr(self, name)
            target[:, rows] = torch.as_tensor(getattr(share, name)).to(target.device, target.dtype)

    def flat(self, name: str) -> torch.Tensor:
        """A field with its [num_steps, num_envs] dimensions flattened step-major (index = t * num_envs + env)."""
        return _flat(getattr(self, name))

    def transitions(self) -> Transitions:
        """All steps flattened step-major (index = t * num_envs + env)."""
        return Transitions(self.flat("states"), self.flat("actions"), self.flat("next_states"))

    def flat_log_probs(self) -> torch.Tensor:
        return self.flat("log_probs")

    def minibatches(self, size: int, generator: torch.Generator | None) -> tuple[torch.Tensor, ...]:
        """One shuffled pass over the flat steps, as index chunks of ``size`` (the last may be shorter)."""
        return shuffled_indices(len(self), generator, self.device).split(size)

    def set_rewards(self, rewards: torch.Tensor) -> None:
        """Replace the env rewards with learned ones, given in the order of ``transitions()``."""
        self.rewards.copy_(rewards.reshape(self.num_steps, self.num_envs))

    @torch.no_grad()
    def compute_advantages(self, value: nn.Module, gamma: float, gae_lambda: float) -> None:
        if not self.full:
            raise RuntimeError(f"rollout buffer holds {self.step} of {self.num_steps} steps; fill it first")
        self.values.copy_(value(self.states))
        self.next_values.copy_(value(self.next_states))
        self.advantages, self.returns = compute_gae(
            self.rewards, self.values, self.next_values, self.terminated, self.truncated, gamma, gae_lambda
        )


def shuffled_indices(n: int, generator: torch.Generator | None, device: torch.device | str) -> torch.Tensor:
    """A permutation drawn on the generator's own device (CPU or CUDA), returned on ``device``."""
    return torch.randperm(n, generator=generator, device=draw_device(generator, "cpu")).to(device)


def _flat(x: torch.Tensor) -> torch.Tensor:
    return x.reshape(-1, *x.shape[2:])


def compute_gae(
    rewards: torch.Tensor,
    values: torch.Tensor,
    next_values: torch.Tensor,
    terminated: torch.Tensor,
    truncated: torch.Tensor,
    gamma: float,
    gae_lambda: float,
) -> tuple[torch.Tensor, torch.Tensor]:
    """GAE over time-major tensors [T, ...]; returns (advantages, value targets = advantages + values).

    delta_t = r_t + gamma * V(s'_t) * (1 - terminated_t) - V(s_t)
    A_t = delta_t + gamma * lambda * (1 - done_t) * A_{t+1},  done = terminated or truncated.
    The last stored step bootstraps from V(s') like a truncation.
    """
    not_terminal = 1.0 - terminated
    continues = (1.0 - terminated) * (1.0 - truncated)
    deltas = rewards + gamma * next_values * not_terminal - values
    advantages = torch.zeros_like(rewards)
    running = torch.zeros_like(rewards[0])
    for t in reversed(range(rewards.shape[0])):
        running = deltas[t] + gamma * gae_lambda * continues[t] * running
        advantages[t] = running
    return advantages, advantages + values


def clipped_step(
    optimizer: torch.optim.Optimizer, module: nn.Module, loss: torch.Tensor, max_grad_norm: float
) -> None:
    """One optimiser step on ``loss`` with the module's gradient norm clipped (every learner's update)."""
    optimizer.zero_grad(set_to_none=True)
    loss.backward()
    nn.utils.clip_grad_norm_(module.parameters(), max_grad_norm)
    optimizer.step()
