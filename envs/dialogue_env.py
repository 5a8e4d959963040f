"""The MultiWOZ dialogue as a Gymnasium environment: a simulated user, a rule DST, a vectoriser, an evaluator.

One episode is one dialogue; a round is a user turn and the system's reply, and an episode that reaches
``max_rounds`` user turns without the user ending it is truncated. ``reset`` samples a user goal and returns the state after the user's opening turn;
each ``step`` takes the system's action — a 0/1 vector over the 209 delexicalised system acts — lexicalises it
from the database, lets the user answer, tracks the belief state and returns the next 340-dim state.

Randomness: a dialogue depends only on its *dialogue seed* (``reset(seed=s)`` uses ``s``; a reset without a seed
draws the next dialogue seed from the environment's own generator). Within a dialogue one ``random.Random``
stream feeds, in ConvLab-2's order, the goal sampler, the user's agenda, the lexicaliser's taxi look-ups and
the evaluator's reward, so a dialogue replays ConvLab-2's recorded one exactly (``tests/test_env_parity.py``).
The evaluator's reward is computed after every user turn whatever the reward mode, so that the stream (and
hence the dialogue) does not depend on the mode.

Spaces: observation ``MultiBinary(340)`` (int8; layout in ``envs.multiwoz.vector``; the last entry marks the
state in which the user ended the dialogue, as the recorded traces and the corpus expert data have it), action
``MultiBinary(209)`` (any integer or bool dtype; entries must be 0 or 1).

``info`` of every step: ``dialogue_seed``, ``round``, ``user_acts``, ``sys_acts``, ``belief_state`` (a copy),
``eval_reward`` and ``user_reward`` (both rewards, whatever the mode); the step that ends the dialogue adds
``metrics``, the evaluator's ``DialogueMetrics`` (both metric definitions).
"""

from __future__ import annotations

import dataclasses
import functools
import random
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import gymnasium as gym
import numpy as np
from gymnasium import spaces
from gymnasium.error import ResetNeeded

from envs.acts import Act, ActLike
from envs.multiwoz import data as mw_data
from envs.multiwoz.agenda import UserSimulator as AgendaUser
from envs.multiwoz.db import Database
from envs.multiwoz.dst import RuleDST
from envs.multiwoz.evaluator import Evaluator
from envs.multiwoz.goal import GoalGenerator
from envs.multiwoz.vector import ACTION_DIM, STATE_DIM, Vectoriser, current_domain
from envs.noise import NoisyUser
from envs.user import UserSimulator

REWARD_MODES = ("evaluator", "user", "none")
MAX_ROUNDS = 40


@dataclasses.dataclass(frozen=True)
class World:
    """The read-only parts of the dialogue world, built once per process and data folder."""

    data: mw_data.MultiWozData
    db: Database
    goals: GoalGenerator
    vectoriser: Vectoriser


@functools.lru_cache(maxsize=4)
def build_world(data_dir: str | Path | None = None) -> World:
    data = mw_data.load(data_dir)
    db = Database.from_data(data)
    return World(data=data, db=db, goals=GoalGenerator.from_data(data, db), vectoriser=Vectoriser(data, db))


def make_user(simulator: str, world: World) -> UserSimulator:
    if simulator == "agenda":
        return AgendaUser.from_data(world.data)
    if simulator == "vhus":
        from envs.vhus.simulator import VHUSUser  # imported lazily: VHUS needs torch

        return VHUSUser.from_data(world.data)
    raise ValueError(f"simulator {simulator!r}: expected 'agenda' or 'vhus'")


class DialogueEnv(gym.Env[np.ndarray, np.ndarray]):
    """A MultiWOZ dialogue against a simulated user; see the module docstring."""

    metadata = {"render_modes": ["ansi"]}

    def __init__(
        self,
        simulator: str = "agenda",
        reward_mode: str = "user",
        max_rounds: int = MAX_ROUNDS,
        data_dir: str | Path | None = None,
        render_mode: str | None = None,
        user: UserSimulator | None = None,
        user_noise: float = 0.0,
    ):
        if reward_mode not in REWARD_MODES:
            raise ValueError(f"reward_mode {reward_mode!r}: expected one of {REWARD_MODES}")
        if max_rounds < 1:
            raise ValueError(f"max_rounds {max_rounds}: expected a positive number of rounds")
        if render_mode not in (None, *self.metadata["render_modes"]):
            raise ValueError(f"render_mode {render_mode!r}: expected None or 'ansi'")
        self.world = build_world(data_dir)
        self.simulator = simulator
        self.user = user if user is not None else make_user(simulator, self.world)
        if user_noise:  # the user's acts reach the tracker through a noisy channel (envs.noise)
            self.user = NoisyUser(self.user, user_noise, self.world.data)
        self.reward_mode = reward_mode
        self.max_rounds = max_rounds
        self.render_mode = render_mode
        self.observation_space = spaces.MultiBinary(STATE_DIM)
        self.action_space = spaces.MultiBinary(ACTION_DIM)
        self.dst = RuleDST.from_data(self.world.data)
        self.evaluator = Evaluator(self.world.db)
        self.rng = random.Random()
        self._goal_np_rng = np.random.RandomState()
        self.dialogue_seed: int | None = None
        self.goal: dict[str, Any] = {}
        self.rounds = 0
        self.cur_domain: str | None = None
        self.user_acts: list[Act] = []
        self.sys_acts: list[Act] = []
        self.transcript: list[tuple[str, list[Act]]] = []
        self._user_reward = 0.0
        self._over = True

    # -- Gymnasium API --------------------------------------------------------------------------------------

    def reset(self, *, seed: int | None = None, options: dict[str, Any] | None = None):
        super().reset(seed=seed)
        self.dialogue_seed = int(seed) if seed is not None else int(self.np_random.integers(2**31 - 1))
        self.rng = random.Random(self.dialogue_seed)
        self._goal_np_rng.seed(self.dialogue_seed)  # re-seeding is ~100x cheaper than a new RandomState
        self.goal = self.world.goals.sample(self.rng, self._goal_np_rng)
        self.user.start(self.goal, self.rng)
        self.dst.reset()
        self.evaluator.reset(self.user.domain_goals)
        self.rounds = 0
        self.cur_domain = None
        self.sys_acts = []
        self.transcript = []
        self._over = False
        observation, _, _, info = self._user_turn()
        return observation, info

    def step(self, action):
        return self.step_acts(self._lexicalise(action))

    def render(self) -> str | None:
        if self.render_mode != "ansi":
            return None
        lines = [f"dialogue seed {self.dialogue_seed}"]
        for speaker, acts in self.transcript:
            lines.append(f"{speaker}: " + "; ".join("-".join(map(str, act)) for act in acts))
        return "\n".join(lines)

    # -- beyond Gymnasium -----------------------------------------------------------------------------------

    def step_acts(self, sys_acts: Sequence[ActLike]):
        """A step with lexicalised system acts (rule policies, corpus replays); ``step`` lexicalises first."""
        if self._over:
            raise ResetNeeded("the dialogue is over (or never started): call reset() before step()")
        self.sys_acts = [list(act) for act in sys_acts]
        self.transcript.append(("sys", self.sys_acts))
        observation, eval_reward, terminated, info = self._user_turn()
        truncated = not terminated and self.rounds >= self.max_rounds
        self._over = terminated or truncated
        if self._over:
            info["metrics"] = self.evaluator.dialogue_metrics(self.rounds, terminated, self.rng)
        return observation, self._reward(eval_reward), terminated, truncated, info

    @property
    def belief_state(self) -> dict:
        return self.dst.state.belief_state

    @property
    def state(self):
        """The tracker's dialogue state (what a rule policy reads)."""
        return self.dst.state

    # -- internals ------------------------------------------------------------------------------------------

    def _lexicalise(self, action) -> list[Act]:
        action = np.asarray(action)
        if action.shape != (ACTION_DIM,) or action.dtype.kind not in "biu":  # bool, signed or unsigned int
            raise ValueError(
                f"action of shape {action.shape} and dtype {action.dtype}: expected {self.action_space} "
                f"(a 0/1 integer or bool vector of length {ACTION_DIM})"
            )
        indices = action.nonzero()[0].tolist()
        if indices and action[indices].tolist().count(1) != len(indices):
            raise ValueError(f"action has entries other than 0 and 1: expected {self.action_space}")
        if self._over:
            raise ResetNeeded("the dialogue is over (or never started): call reset() before step()")
        return self.world.vectoriser.action_to_acts(indices, self.belief_state, self.rng, self.cur_domain)

    def _user_turn(self) -> tuple[np.ndarray, int, bool, dict[str, Any]]:
        """The user answers ``self.sys_acts``; track, score and observe the result."""
        user, evaluator = self.user, self.evaluator
        self.user_acts = user_acts = user.respond(self.sys_acts)
        self.rounds += 1
        self.transcript.append(("user", user_acts))
        self.cur_domain = current_domain(user_acts, self.cur_domain)
        evaluator.add_system_acts(self.sys_acts)
        evaluator.add_user_acts(user_acts)
        state = self.dst.update(user_acts, self.sys_acts)
        eval_reward = evaluator.reward(self.rng)
        terminated = user.terminated
        observation = self.world.vectoriser.state_vector(
            state.belief_state, user_acts, self.sys_acts, terminated, dtype=np.int8
        )
        self._user_reward = user.reward
        info = {
            "dialogue_seed": self.dialogue_seed,
            "round": self.rounds,
            "user_acts": user_acts,
            "sys_acts": self.sys_acts,
            "belief_state": _copy_belief(state.belief_state),
            "eval_reward": eval_reward,
            "user_reward": self._user_reward,
        }
        return observation, eval_reward, terminated, info

    def _reward(self, eval_reward: int) -> float:
        if self.reward_mode == "evaluator":
            return float(eval_reward)
        if self.reward_mode == "user":
            return float(self._user_reward)  # the user's reward after its turn (``_user_turn``)
        return 0.0


def _copy_belief(belief_state: dict) -> dict:
    """Two-level copy: the tracker keeps mutating its own dicts after the step returns. (Plain loops: nested
    comprehensions cost a function call each, which showed in the step's profile.)"""
    copied = {}
    for domain, parts in belief_state.items():
        parts_copy = {}
        for part, slots in parts.items():
            parts_copy[part] = dict(slots) if isinstance(slots, dict) else slots
        copied[domain] = parts_copy
    return copied
