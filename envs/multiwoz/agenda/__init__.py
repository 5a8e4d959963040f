"""The agenda-based MultiWOZ user simulator, behaving turn for turn like ConvLab-2's ``UserPolicyAgendaMultiWoz``.

The user holds a goal (per domain: constraints ``info``, requested slots ``reqt``, booking details ``book``,
and the ``fail_info`` / ``fail_book`` variants it tries first) and an *agenda*: a stack of pending user acts
``[diaact, slot, value]`` with ``general-bye`` at the bottom. Each turn it reacts to the system's acts by editing
the agenda and its goal (restating violated constraints, filling requested slots, switching from a failing
variant to the real one), then pops the top of the stack as its next acts. All randomness comes from one
injected ``random.Random``, consumed in ConvLab-2's order so recorded RNG positions replay exactly.

Modules, each importing only those above it:

* ``values``: the special slot values (``?``, ``dontcare``, ``none``, ``yes``) and ``ValueNormalizer``, which maps a
  system's value onto the canonical spelling of ``value_set.json``;
* ``user_goal``: ``UserGoal``, the goal the session mutates, and ``GoalScoredUser``, the completion and the
  +80 / −40 / −1 reward every user keeping such a goal shares (VHUS too);
* ``stack``: ``Agenda``, the stack of pending user acts;
* ``reactions``: how the user reacts to each system intent;
* ``simulator``: ``UserSimulator``, the agenda user itself.

The names below are the package's public interface; import them from ``envs.multiwoz.agenda``.
"""

from envs.multiwoz.agenda.reactions import (
    BOOKING_REACTIONS,
    DOMAIN_REACTIONS,
    EMPTY,
    NOT_IN_GOAL,
    PLACE_DOMAINS,
    SINGLE_CHOICE_WORDS,
    TIME_SLOT_BY_DOMAIN,
    Reaction,
    react_inform,
    react_no_book,
    react_no_offer,
    react_request,
    react_select,
)
from envs.multiwoz.agenda.simulator import (
    MAX_INITIATIVE,
    NO_CHOICE_WORDS,
    SPECIAL_USER_PAIRS,
    SPECIAL_USER_SLOT_NAMES,
    TRACKED_DOMAINS,
    USER_DOMAIN_SLOTS,
    UserSimulator,
)
from envs.multiwoz.agenda.stack import CLOSE_ACT, SAME_VALUE_PHRASES, SAME_VALUE_PROBABILITY, Agenda, Item
from envs.multiwoz.agenda.user_goal import (
    BOOK_SLOTS,
    COMPLETE_REWARD,
    FAILURE_REWARD,
    MAX_TURN,
    TURN_REWARD,
    GoalScoredUser,
    UserGoal,
)
from envs.multiwoz.agenda.values import (
    BOOKED,
    DONT_CARE,
    NONE,
    NORMALIZE_MEMO_LIMIT,
    NOT_SURE_VALUES,
    TIME_PATTERN,
    UNKNOWN,
    YES_NO_SLOTS,
    CanonicalValues,
    ValueNormalizer,
)

__all__ = [
    "BOOKED",
    "BOOKING_REACTIONS",
    "BOOK_SLOTS",
    "CLOSE_ACT",
    "COMPLETE_REWARD",
    "DOMAIN_REACTIONS",
    "DONT_CARE",
    "EMPTY",
    "FAILURE_REWARD",
    "MAX_INITIATIVE",
    "MAX_TURN",
    "NONE",
    "NORMALIZE_MEMO_LIMIT",
    "NOT_IN_GOAL",
    "NOT_SURE_VALUES",
    "NO_CHOICE_WORDS",
    "PLACE_DOMAINS",
    "SAME_VALUE_PHRASES",
    "SAME_VALUE_PROBABILITY",
    "SINGLE_CHOICE_WORDS",
    "SPECIAL_USER_PAIRS",
    "SPECIAL_USER_SLOT_NAMES",
    "TIME_PATTERN",
    "TIME_SLOT_BY_DOMAIN",
    "TRACKED_DOMAINS",
    "TURN_REWARD",
    "UNKNOWN",
    "USER_DOMAIN_SLOTS",
    "YES_NO_SLOTS",
    "Agenda",
    "CanonicalValues",
    "GoalScoredUser",
    "Item",
    "Reaction",
    "UserGoal",
    "UserSimulator",
    "ValueNormalizer",
    "react_inform",
    "react_no_book",
    "react_no_offer",
    "react_request",
    "react_select",
]
