"""The user's goal as the session mutates it, and what every user keeping one shares: completion and reward.

Per domain the goal holds constraints ``info``, requested slots ``reqt``, booking details ``book``, and the
``fail_info`` / ``fail_book`` variants the user tries first; ``booked`` is added where the user must book.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import Mapping
from typing import Any

from envs.multiwoz.agenda.values import BOOKED, NOT_SURE_VALUES, UNKNOWN

BOOK_SLOTS = frozenset({"people", "day", "stay", "time"})
MAX_TURN = 40  # ConvLab-2 counts two turns per user reply, so the user closes on its 21st reply
COMPLETE_REWARD = 2.0 * MAX_TURN
FAILURE_REWARD = -1.0 * MAX_TURN
TURN_REWARD = -1.0


class UserGoal:
    """The user's goal per domain, mutated as the system informs and books (the dict the evaluator scores)."""

    __slots__ = ("domains", "domain_set", "domain_goals")

    def __init__(self, goal_raw: Mapping[str, Any]):
        ordering = goal_raw.get("domain_ordering")
        if ordering is None or any(domain not in goal_raw for domain in ordering):
            raise ValueError(f"goal {goal_raw!r}: expected 'domain_ordering' listing domains the goal has")
        self.domains: list[str] = list(ordering)
        self.domain_set = frozenset(self.domains)
        self.domain_goals: dict[str, dict[str, Any]] = {}
        for domain, parts in goal_raw.items():
            if domain == "domain_ordering":
                continue
            goal: dict[str, Any] = {}
            for key, value in parts.items():
                if key == "reqt" and domain in self.domain_set:
                    goal[key] = dict.fromkeys(value, UNKNOWN)
                else:
                    goal[key] = value.copy() if isinstance(value, dict | list) else value
            if "book" in goal and domain in self.domain_set:
                goal["booked"] = UNKNOWN
            self.domain_goals[domain] = goal

    def complete(self) -> bool:
        """Every requested slot answered and every booking made."""
        for domain in self.domains:
            goal = self.domain_goals[domain]
            if "reqt" in goal and any(value in NOT_SURE_VALUES for value in goal["reqt"].values()):
                return False
            if goal.get("booked", BOOKED) in NOT_SURE_VALUES:
                return False
        return True

    def next_incomplete(self) -> tuple[str, str, Any] | None:
        """First open task in domain order: ``(domain, "reqt", slots)`` or ``(domain, "book", details)``."""
        for domain in self.domains:
            goal = self.domain_goals[domain]
            if "reqt" in goal:
                unknown = [slot for slot, value in goal["reqt"].items() if value in NOT_SURE_VALUES]
                if unknown:
                    return domain, "reqt", ["name"] if "name" in unknown else unknown
            if goal.get("booked", BOOKED) in NOT_SURE_VALUES:
                return domain, "book", goal["fail_book"] if "fail_book" in goal else goal["book"]
        return None


class GoalScoredUser(ABC):
    """What every simulated user that keeps a ``UserGoal`` shares (the agenda user and VHUS): completion, the
    +80 / −40 / −1 reward and the live goal the evaluator scores. Subclasses provide ``goal`` and ``terminated``.
    """

    goal: UserGoal | None

    @property
    @abstractmethod
    def terminated(self) -> bool:
        """The user has ended the dialogue."""

    @property
    def goal_complete(self) -> bool:
        return self.goal is not None and self.goal.complete()

    @property
    def reward(self) -> float:
        """+80 once the goal is complete, -40 when the user ended without completing it, else -1."""
        if self.goal_complete:
            return COMPLETE_REWARD
        return FAILURE_REWARD if self.terminated else TURN_REWARD

    @property
    def domain_goals(self) -> dict[str, dict[str, Any]]:
        """The live goal (mutated as the session goes on): what the evaluator scores."""
        if self.goal is None:
            raise RuntimeError("no session: call start(goal_raw, rng) first")
        return self.goal.domain_goals
