"""Agents that play dialogues (a system policy behind one interface) and the loop that scores them.

``run_dialogues`` plays one dialogue per seed and summarises the evaluator's metrics under both definitions
(``envs.multiwoz.evaluator``); validation during training and ``vrb.evaluate`` both use it.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Sequence
from typing import Any, Protocol, cast

import numpy as np
import torch
from tqdm import tqdm

from envs.dialogue_env import DialogueEnv
from envs.multiwoz.evaluator import DialogueMetrics, summarize
from envs.multiwoz.rule_policy import RulePolicy
from vrb.policy import MultiLabelPolicy


class Agent(Protocol):
    """A system policy: a 209-act 0/1 vector (neural policies) or lexicalised acts (rule policy)."""

    def reset(self) -> None: ...

    def act(self, env: DialogueEnv, observation: np.ndarray) -> np.ndarray | list[list[str]]: ...


class BatchAgent(Agent, Protocol):
    """An agent that also acts on many dialogues' states at once (``NeuralAgent``)."""

    def act_many(self, envs: Sequence[DialogueEnv], observations: Sequence[np.ndarray]) -> np.ndarray: ...


class NeuralAgent:
    """A policy acting through a decoder (``vrb.policy.DECODERS``; greedy with the empty-action fallback by
    default). A sampling decoder draws from a generator reseeded for each dialogue with ``sample_seed`` + the
    dialogue seed, so a dialogue played alone does not depend on which dialogues came before. The generator is
    one for all dialogues: played side by side (``act_many``), the running dialogues' draws interleave, so
    validation with ``decoder=sample`` depends on ``VALIDATION_WIDTH`` (kept: a generator per dialogue would
    change such runs' validation numbers; ``tests/test_validation.py`` marks it)."""

    def __init__(
        self, policy: MultiLabelPolicy, decoder: str = "greedy", fallback: bool = True, sample_seed: int = 0
    ):
        self.policy = policy.eval()
        self.decoder, self.fallback, self.sample_seed = decoder, fallback, sample_seed
        self.generator = torch.Generator()

    def reset(self) -> None:
        pass

    def _states(self, observations: np.ndarray) -> torch.Tensor:
        """Observations as a batch on the policy's device (the run's: validation acts with the learning policy)."""
        device = next(self.policy.parameters()).device
        return torch.as_tensor(observations, dtype=torch.float32, device=device)

    def act(self, env: DialogueEnv, observation: np.ndarray) -> np.ndarray:
        state = self._states(observation).unsqueeze(0)
        if env.rounds == 1:  # the dialogue's first system turn
            assert env.dialogue_seed is not None  # reset() drew it
            self.generator.manual_seed(self.sample_seed + int(env.dialogue_seed))
        action, _ = self.policy.act(state, self.generator, self.decoder, self.fallback)
        return action[0].to(torch.int8).cpu().numpy()

    def act_many(self, envs: Sequence[DialogueEnv], observations: Sequence[np.ndarray]) -> np.ndarray:
        """One forward pass for many dialogues, in their order; a sampling decoder acts dialogue by dialogue (a
        batch of one each, from the shared generator: the class docstring)."""
        if self.decoder == "sample":
            return np.stack([self.act(env, obs) for env, obs in zip(envs, observations, strict=True)])
        actions, _ = self.policy.act(self._states(np.stack(observations)), None, self.decoder, self.fallback)
        return actions.to(torch.int8).cpu().numpy()


class RuleAgent:
    """ConvLab-2's handcrafted system policy; it shares the dialogue's random stream, as in ConvLab-2."""

    def __init__(self, env: DialogueEnv):
        self.policy = RulePolicy(env.world.db)

    def reset(self) -> None:
        self.policy.reset()

    def act(self, env: DialogueEnv, observation: np.ndarray) -> list[list[str]]:
        return self.policy.act(env.state, env.rng)


@dataclasses.dataclass
class EvalResult:
    summary: dict[str, Any]
    dialogues: list[dict[str, Any]]
    transcripts: list[list[tuple[str, list]]]


def run_dialogues(
    agent: Agent,
    env: DialogueEnv | Sequence[DialogueEnv],
    seeds: Sequence[int],
    *,
    keep_transcripts: int = 0,
    progress: bool = False,
) -> EvalResult:
    """One dialogue per seed; the evaluator's metrics of each and their summary.

    Given several environments and an agent that acts on many states at once (``act_many``: a stateless
    policy), the dialogues run side by side, one policy forward pass for all of them; results come back in seed
    order. Which dialogues share a forward pass is fixed by the seeds and the number of environments, and must
    stay so: a network's rows differ in their last bits between batch sizes (BLAS sums in another order), so
    another schedule (a wider batch, the tail run in a batch of several) could flip a decision and change a
    run's validation numbers. An agent without ``act_many`` (the rule policy, baselines' agents) plays one
    dialogue at a time in the first environment.
    """
    envs = [env] if isinstance(env, DialogueEnv) else list(env)
    metrics: list[DialogueMetrics | None] = [None] * len(seeds)
    transcripts: dict[int, list[tuple[str, list]]] = {}
    acts_said: list[int] = []  # per system turn: how many acts it said (behaviour, beside the metrics)
    pending = iter(enumerate(tqdm(seeds, desc="evaluate", disable=not progress, leave=False)))
    running: dict[int, tuple[int, np.ndarray]] = {}  # env slot -> (dialogue index, observation)

    def start(slot: int) -> None:
        if (nxt := next(pending, None)) is not None:
            running[slot] = (nxt[0], envs[slot].reset(seed=int(nxt[1]))[0])
            agent.reset()

    batched = cast(BatchAgent, agent) if hasattr(agent, "act_many") else None
    for slot in range(len(envs) if batched is not None else 1):
        start(slot)
    while running:
        slots = list(running)
        actions: np.ndarray | list[np.ndarray | list[list[str]]]
        if batched is not None and len(slots) > 1:  # (several dialogues run only for a batching agent)
            actions = batched.act_many([envs[k] for k in slots], [running[k][1] for k in slots])
        else:
            actions = [agent.act(envs[slots[0]], running[slots[0]][1])]
        for slot, action in zip(slots, actions, strict=True):
            current = envs[slot]
            step = current.step_acts if isinstance(action, list) else current.step
            observation, _, terminated, truncated, info = step(action)
            acts_said.append(len(current.sys_acts))
            index = running[slot][0]
            if terminated or truncated:
                metrics[index] = info["metrics"]
                if index < keep_transcripts:
                    transcripts[index] = list(current.transcript)
                del running[slot]
                start(slot)
            else:
                running[slot] = (index, observation)
    finished = cast(list[DialogueMetrics], metrics)  # every dialogue ran to its end
    per_dialogue = [
        {"seed": int(seed), **dataclasses.asdict(m)} for seed, m in zip(seeds, finished, strict=True)
    ]
    behaviour = {
        "acts_per_turn": float(np.mean(acts_said)) if acts_said else 0.0,
        "empty_turn_rate": float(np.mean([n == 0 for n in acts_said])) if acts_said else 0.0,
    }
    ordered = [transcripts[i] for i in sorted(transcripts)]
    return EvalResult(summarize(finished) | behaviour, per_dialogue, ordered)
