"""The ``UserSimulator`` protocol: what the environment needs from a simulated user.

The agenda user (``envs.multiwoz.agenda``) and VHUS (``envs.vhus.simulator``) provide it, and so does
``envs.noise.NoisyUser``, which wraps either; ``envs.dialogue_env`` drives it.
"""

from __future__ import annotations

import random
from collections.abc import Sequence
from typing import Any, Protocol

from envs.acts import Act, ActLike


class UserSimulator(Protocol):
    """What the environment needs from a simulated user (the agenda user and VHUS both provide it)."""

    def start(self, goal_raw: dict[str, Any], rng: random.Random) -> None: ...

    def respond(self, sys_acts: Sequence[ActLike]) -> list[Act]: ...

    @property
    def terminated(self) -> bool: ...

    @property
    def reward(self) -> float: ...

    @property
    def domain_goals(self) -> dict[str, dict[str, Any]]: ...
