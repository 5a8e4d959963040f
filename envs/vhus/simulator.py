"""VHUS as the environment's simulated user (the ``UserSimulator`` protocol of ``envs.user``).

Each turn the system's acts are written as VHUS tokens relative to the goal, the model answers with user-act
tokens, and those are read back into ``[intent, domain, slot, value]`` acts with values from the goal;
pieces that make no act are dropped with a debug log. Decoding is greedy with the latent at its mean by
default, so a dialogue is a function of its goal and the system's acts; ``sample=True`` draws the latent
and the tokens from a numpy ``Generator`` seeded from the dialogue's ``random.Random`` (one draw at
``start``), so a sampled dialogue still depends only on its seed.

The model only says when the user ends the dialogue (its termination head). Whether the goal is *complete*
is tracked beside it the way the agenda user tracks it, on the same ``UserGoal``: a requested slot is
answered when the system informs it (inform / recommend / offer-book / offer-booked / booking acts of the
domain, booking acts applying to the domain in focus), and a booking is made when the system books
(``Booking-Book`` or ``<Domain>-OfferBooked``). ``domain_goals`` is that live goal (the evaluator scores it);
the user's reward is +80 once the goal is complete, -40 when the user ended without completing it, else -1.
"""

from __future__ import annotations

import fcntl
import logging
import random
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np

from envs.acts import Act, ActLike, check_system_act
from envs.multiwoz.agenda import (
    BOOKED,
    NOT_SURE_VALUES,
    GoalScoredUser,
    UserGoal,
    ValueNormalizer,
)
from envs.multiwoz.ontology import SYSTEM_SLOT_TO_GOAL_SLOT
from envs.vhus import cache
from envs.vhus.corpus import Vocabs, goal_tokens, group_acts, parse_user_tokens, system_tokens
from envs.vhus.inference import FastVHUS, Session
from envs.vhus.model import VHUS

logger = logging.getLogger(__name__)

ANSWER_INTENTS = frozenset({"inform", "recommend", "offerbook", "offerbooked", "book"})
BOOKING_INTENTS = frozenset({("booking", "book"), ("*", "offerbooked")})
FOCUS_DOMAINS = frozenset({"attraction", "hotel", "restaurant", "taxi", "train", "hospital", "police"})


def _train_now(data, path: Path, goal_regularizer: bool) -> None:
    from envs.vhus import train

    logger.warning(
        "VHUS: no trained simulator at %s; training one now on the %r split. This takes a few "
        "minutes on CPU (about 2-5 on two cores) and happens once per data folder; "
        "`python -m envs.vhus.train` does it beforehand.",
        path,
        data.training_split(),
    )
    train.train(
        data, path, train.TrainSettings(goal_regularizer=goal_regularizer), log_dir=path.parent / "tb"
    )


class VHUSUser(GoalScoredUser):
    """A trained VHUS speaking as the user: ``start(goal_raw, rng)``, then ``respond(system_acts)`` each turn."""

    def __init__(self, model: VHUS, vocabs: Vocabs, value_set: Mapping[str, Any], *, sample: bool = False):
        self.model = model.eval()
        self.engine = FastVHUS.shared(model)  # one per model and process: its caches are shared
        self.vocabs = vocabs
        self.normalize = ValueNormalizer(value_set)
        self.sample = sample
        self.goal: UserGoal | None = None
        self.goal_raw: Mapping[str, Any] = {}
        self.session: Session | None = None
        self.generator: np.random.Generator | None = None
        self.focus: str | None = None
        self._terminated = False

    @classmethod
    def from_data(
        cls, data, *, sample: bool = False, goal_regularizer: bool = False, model_path: Path | None = None
    ) -> VHUSUser:
        """Load the cached trained simulator for this data folder, training it first if there is none."""
        path = model_path or cache.model_path(data, goal_regularizer)
        if not path.is_file():
            path.parent.mkdir(parents=True, exist_ok=True)
            with open(path.parent / "train.lock", "w") as lock:  # parallel environments train it once
                fcntl.flock(lock, fcntl.LOCK_EX)
                if not path.is_file():
                    _train_now(data, path, goal_regularizer)
        model, extra = cache.load_checkpoint(path)
        logger.info(
            "VHUS: loaded %s (trained on %r, test act F1 %s)",
            path,
            extra.get("split"),
            extra.get("test", {}).get("act_f1"),
        )
        return cls(model, Vocabs.from_data(data), data.value_set, sample=sample)

    # -- the UserSimulator protocol ---------------------------------------------------------------------------

    def start(self, goal_raw: Mapping[str, Any], rng: random.Random) -> None:
        """New session; draws from ``rng`` only when sampling (one draw, the generator's seed)."""
        self.goal = UserGoal(goal_raw)
        self.goal_raw = goal_raw
        goal_ids = self.vocabs.goal.encode(goal_tokens(goal_raw))
        self.session = self.engine.start(goal_ids, self.vocabs.goal_slot_flags(goal_ids))
        self.generator = np.random.default_rng(rng.getrandbits(63)) if self.sample else None
        self.focus = None
        self._terminated = False

    def respond(self, sys_acts: Sequence[ActLike]) -> list[Act]:
        if self.session is None:
            raise RuntimeError("no session: call start(goal_raw, rng) first")
        if self._terminated:
            raise RuntimeError("the user has ended this session; call start() for a new one")
        for act in sys_acts:
            check_system_act(act)
        self._track(sys_acts)
        system_ids = self.vocabs.sys.encode(system_tokens(group_acts(sys_acts), self.goal_raw))
        user_ids, self._terminated = self.engine.respond(self.session, system_ids, rng=self.generator)
        tokens = self.vocabs.usr.decode(user_ids)
        acts = parse_user_tokens(tokens, self.goal_raw)
        if not acts:
            logger.debug("VHUS decoded %s: no usable act; the user says nothing this turn", tokens)
        for _, domain, _, _ in acts:
            if domain.lower() in FOCUS_DOMAINS:
                self.focus = domain.lower()
        return acts

    @property
    def terminated(self) -> bool:
        return self._terminated

    # -- goal tracking ----------------------------------------------------------------------------------------

    def _track(self, sys_acts: Sequence[ActLike]) -> None:
        """Fill answered requests and made bookings into the live goal (see the module docstring)."""
        goal = self.goal
        assert goal is not None  # start() sets it with the session respond() checked
        goals = goal.domain_goals
        for _, domain, _, _ in sys_acts:
            if domain.lower() in goal.domain_set:
                self.focus = domain.lower()
        for intent, domain, slot, value in sys_acts:
            source, intent = domain.lower(), intent.lower()
            target = self.focus if source == "booking" else source
            if target is None or target not in goal.domain_set or intent not in ANSWER_INTENTS:
                continue
            parts = goals[target]
            if "booked" in parts and (
                (source, intent) in BOOKING_INTENTS or ("*", intent) in BOOKING_INTENTS
            ):
                parts["booked"] = BOOKED
            goal_slot = SYSTEM_SLOT_TO_GOAL_SLOT.get(source, {}).get(slot.lower())
            requested = parts.get("reqt")
            if goal_slot is None or not requested or goal_slot not in requested:
                continue
            answer = self.normalize(target, intent, goal_slot, value)
            requested[goal_slot] = f'"{answer}"' if answer in NOT_SURE_VALUES else answer
