"""The agenda: the stack of pending user acts ``[diaact, slot, value]``, ``general-bye`` at the bottom.

It is filled from the goal at the start of a session (drawing the order of each domain's constraints), edited as
the user reacts to the system, and popped for the user's next acts.
"""

from __future__ import annotations

import random
from collections.abc import Sequence
from types import MappingProxyType

from envs.multiwoz.agenda.user_goal import BOOK_SLOTS, UserGoal
from envs.multiwoz.agenda.values import DONT_CARE, NONE

CLOSE_ACT = "general-bye"

# A value repeated for these slots is, 30% of the time, phrased as a back-reference instead.
SAME_VALUE_PROBABILITY = 0.3
SAME_VALUE_PHRASES = MappingProxyType(
    {
        "people": "the same",
        "day": "the same day",
        "pricerange": "in the same price range as the {domain}",
        "area": "same area as the {domain}",
    }
)

Item = list  # an agenda entry: [diaact, slot, value]; mutable so a value can become a back-reference


def _sample_all(rng: random.Random, keys: Sequence[str]) -> list[str]:
    """A random order of ``keys``, drawn as ConvLab-2 drew it (a draw for the count, then the sample)."""
    count = rng.randint(len(keys), len(keys))
    return rng.sample(keys, count)


class Agenda:
    """The stack of pending user acts; the last item is said first."""

    __slots__ = ("stack", "pushed", "current_domain", "rng")

    def __init__(self, goal: UserGoal, rng: random.Random):
        self.stack: list[Item] = []
        self.pushed = 0  # items pushed in reaction to the current system turn
        self.current_domain: str | None = None
        self.rng = rng
        self.push(CLOSE_ACT)
        for domain in reversed(goal.domains):
            parts = goal.domain_goals[domain]
            constraints = parts["fail_info"] if "fail_info" in parts else parts.get("info")
            if constraints is not None:
                for slot in _sample_all(rng, list(constraints)):
                    self.push(f"{domain}-inform", slot, constraints[slot])
            self.push(f"{domain}-inform")

    def push(self, diaact: str, slot: str = NONE, value: str = NONE) -> None:
        phrase = SAME_VALUE_PHRASES.get(slot)
        if phrase is not None:
            for item in self.stack:
                if item[1] == slot and item[2] == value and self.rng.random() < SAME_VALUE_PROBABILITY:
                    item[2] = phrase.format(domain=diaact.split("-")[0])
        self.stack.append([diaact, slot, value])

    def push_item(self, diaact: str, slot: str = NONE, value: str = NONE) -> None:
        """Push in reaction to the system: replaces the pending act for the same slot and counts the push."""
        self.remove(diaact, slot)
        self.push(diaact, slot, value)
        self.pushed += 1

    def remove(self, diaact: str, slot: str) -> None:
        """Drop the lowest pending ``diaact`` for ``slot`` (any slot for general acts)."""
        any_slot = "general" in diaact
        for index, item in enumerate(self.stack):
            if item[0] == diaact and (any_slot or item[1] == slot):
                del self.stack[index]
                return

    def has_request(self, domain: str) -> bool:
        diaact = f"{domain}-request"
        return any(item[0] == diaact for item in self.stack)

    def has_constraint(self, domain: str) -> bool:
        """A search constraint of ``domain`` is still to be said (so answers may not be for the right entity)."""
        diaact = f"{domain}-inform"
        return any(item[0] == diaact and item[1] not in BOOK_SLOTS for item in self.stack)

    def has_booking_detail(self, domain: str) -> bool:
        diaact = f"{domain}-inform"
        return any(item[0] == diaact and item[1] in BOOK_SLOTS for item in self.stack)

    def close(self) -> None:
        self.stack = []
        self.pushed = 0
        self.push(CLOSE_ACT)

    def pop(self, initiative: int) -> list[Item]:
        """The next acts: consecutive items of the top diaact, as many as were just pushed (or ``initiative``).

        Booking details go out together (up to ten when nothing was pushed); a request for a name goes alone.
        """
        stack = self.stack
        top_act, top_slot = stack[-1][0], stack[-1][1]
        popped: list[Item] = []
        if top_act.endswith("-inform") and top_slot in BOOK_SLOTS:
            for _ in range(self.pushed or 10):
                item = stack.pop()
                popped.append(item)
                if not stack:
                    break
                following = stack[-1]
                if following[0] != item[0] or following[1] not in BOOK_SLOTS:
                    break
            return popped
        pushed = self.pushed
        only_dont_care = all(stack[-i - 1][2] == DONT_CARE for i in range(min(len(stack), pushed)))
        for _ in range(initiative if pushed == 0 or only_dont_care else pushed):
            item = stack.pop()
            popped.append(item)
            if not stack or stack[-1][0] != item[0] or (item[0].endswith("-request") and item[1] == "name"):
                break
        return popped

    def items(self) -> list[list[str]]:
        return [list(item) for item in self.stack]
