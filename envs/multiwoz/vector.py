"""Dialogue state -> 340-dim vector, and 209-act system action <-> dialogue acts (ConvLab-2's MultiWozVector).

State layout (see ``../shared/traces/*.meta.json``): user acts [0, 78), previous system acts [78, 287), filled
belief slots [287, 311), booked flags [311, 315), database-count buckets [315, 339), terminated [339].
Acts are delexicalised by numbering repeated ``intent-domain-slot`` occurrences (``...-Name-1``,
``...-Name-2``); requests keep ``?`` and slot-less acts ``none``; acts outside a vocabulary are dropped.

Lexicalising an action fills numbered slots from the database entities matching the belief state (``-2`` reads
the second entity), ``Choice`` with their count, ``NoOffer``/``NoBook`` from the belief state itself, and
``Booking`` acts from the domain the user last spoke about. ConvLab-2 quirks kept on purpose, since its
recorded dialogues depend on them: the train count is bucketed like the other domains (its special buckets
never applied), every domain named in the action is queried (taxi queries draw from the RNG even for a
request), and a ``Booking`` act with no current domain keeps its vocabulary value.
"""

from __future__ import annotations

import random
from collections.abc import Iterable, Mapping, Sequence
from typing import Any

import numpy as np

from envs.acts import Act, ActLike
from envs.multiwoz.db import Database
from envs.multiwoz.ontology import SYSTEM_ACT_SLOT

STATE_DIM = 340
ACTION_DIM = 209
USER_ACT_DIM = 78
DB_DOMAINS = ("Attraction", "Restaurant", "Train", "Hotel")  # booked flags and count buckets, in this order
DB_BUCKETS = 6  # entity counts 0, 1, 2, 3, 4, >= 5
# The belief slots in ConvLab-2's default-state order (domains Attraction, Restaurant, Train, Hotel, Taxi,
# Hospital, Police); police has none.
BELIEF_SLOTS = (
    ("attraction", "type"),
    ("attraction", "name"),
    ("attraction", "area"),
    ("restaurant", "food"),
    ("restaurant", "pricerange"),
    ("restaurant", "name"),
    ("restaurant", "area"),
    ("train", "leaveAt"),
    ("train", "destination"),
    ("train", "day"),
    ("train", "arriveBy"),
    ("train", "departure"),
    ("hotel", "name"),
    ("hotel", "area"),
    ("hotel", "parking"),
    ("hotel", "pricerange"),
    ("hotel", "stars"),
    ("hotel", "internet"),
    ("hotel", "type"),
    ("taxi", "leaveAt"),
    ("taxi", "destination"),
    ("taxi", "departure"),
    ("taxi", "arriveBy"),
    ("hospital", "department"),
)

USER_OFFSET = 0
SYSTEM_OFFSET = USER_OFFSET + USER_ACT_DIM
BELIEF_OFFSET = SYSTEM_OFFSET + ACTION_DIM
BOOKED_OFFSET = BELIEF_OFFSET + len(BELIEF_SLOTS)
DB_OFFSET = BOOKED_OFFSET + len(DB_DOMAINS)
TERMINATED_INDEX = DB_OFFSET + DB_BUCKETS * len(DB_DOMAINS)
assert TERMINATED_INDEX + 1 == STATE_DIM

# The belief slots grouped by domain: (domain, ((slot, state index), ...)), for one dict look-up per domain.
BELIEF_GROUPS = tuple(
    (domain, tuple((slot, BELIEF_OFFSET + i) for i, (d, slot) in enumerate(BELIEF_SLOTS) if d == domain))
    for domain in dict.fromkeys(d for d, _ in BELIEF_SLOTS)
)
DB_KEYS = tuple(domain.lower() for domain in DB_DOMAINS)
MATCH_MEMO_LIMIT = 100_000  # memoised (domain, search slots) -> matching entities, cleared when full

UNQUERIED_DOMAINS = ("general", "Booking")  # action domains with no database of their own
NEGATIVE_INTENTS = ("nooffer", "nobook")  # lexicalised from the belief state, not from entities

BeliefState = Mapping[str, Mapping[str, Mapping[str, Any]]]


def current_domain(user_acts: Iterable[ActLike], previous: str | None) -> str | None:
    """The last database domain the user's acts name, else ``previous`` (what ``Booking`` acts refer to)."""
    for _, domain, _, _ in user_acts:
        if domain in DB_DOMAINS:
            previous = domain
    return previous


def bucket(count: int) -> int:
    return min(count, DB_BUCKETS - 1)


class Vectoriser:
    """Vectorise states and (de)lexicalise system actions with index tables built once."""

    def __init__(self, data, db: Database):
        self.db = db
        self.sys_vocab = tuple(data.sys_act_vocab)
        self.usr_vocab = tuple(data.usr_act_vocab)
        if len(self.sys_vocab) != ACTION_DIM or len(self.usr_vocab) != USER_ACT_DIM:
            raise ValueError(
                f"act vocabularies have {len(self.sys_vocab)}/{len(self.usr_vocab)} entries, "
                f"expected {ACTION_DIM}/{USER_ACT_DIM} (sys_da_voc.txt / usr_da_voc.txt)"
            )
        self._requestable = frozenset(data.trackable_intent["requestable"])
        self._sys_index = {act: i for i, act in enumerate(self.sys_vocab)}
        self._usr_index = {act: i for i, act in enumerate(self.usr_vocab)}
        # index -> (domain, intent, slot, delexicalised value)
        self._sys_parts = tuple(tuple(act.split("-")) for act in self.sys_vocab)
        # (domain, search-slot items) -> matching records: the state asks the same few questions every turn
        self._matches: dict[tuple[str, tuple], Sequence[Mapping[str, Any]]] = {}

    # ---- delexicalisation -------------------------------------------------------------------------------

    def _delexicalised(self, acts: Iterable[ActLike]) -> list[str]:
        """``Domain-Intent-Slot-v`` strings with ``v`` the running count of that intent/domain/slot."""
        counts: dict[tuple[str, str, str], int] = {}
        requestable = self._requestable
        out = []
        for intent, domain, slot, _ in acts:
            if intent in requestable:
                value = "?"
            elif slot == "none":
                value = "none"
            else:
                key = (intent, domain, slot)
                count = counts[key] = counts.get(key, 0) + 1
                value = str(count)
            out.append(f"{domain}-{intent}-{slot}-{value}")
        return out

    def action_indices(self, acts: Iterable[ActLike]) -> list[int]:
        """Vocabulary indices of ``acts``, sorted, acts outside the vocabulary dropped."""
        index = self._sys_index
        return sorted({index[a] for a in self._delexicalised(acts) if a in index})

    def acts_to_action(self, acts: Iterable[ActLike]) -> np.ndarray:
        vec = np.zeros(ACTION_DIM, dtype=np.float32)
        vec[self.action_indices(acts)] = 1.0
        return vec

    # ---- state ------------------------------------------------------------------------------------------

    def state_indices(
        self,
        belief_state: BeliefState,
        user_acts: Iterable[ActLike],
        prev_system_acts: Iterable[ActLike],
        terminated: bool = False,
    ) -> list[int]:
        """Sorted non-zero positions of the state vector."""
        return sorted(set(self._nonzero(belief_state, user_acts, prev_system_acts, terminated)))

    def state_vector(
        self,
        belief_state: BeliefState,
        user_acts: Iterable[ActLike],
        prev_system_acts: Iterable[ActLike],
        terminated: bool = False,
        dtype: Any = np.float32,
    ) -> np.ndarray:
        vec = np.zeros(STATE_DIM, dtype=dtype)
        vec[self._nonzero(belief_state, user_acts, prev_system_acts, terminated)] = 1
        return vec

    def _nonzero(
        self,
        belief_state: BeliefState,
        user_acts: Iterable[ActLike],
        prev_system_acts: Iterable[ActLike],
        terminated: bool,
    ) -> list[int]:
        """The non-zero positions of the state vector, unsorted, possibly repeated."""
        usr_index, sys_index = self._usr_index, self._sys_index
        nz = [usr_index[a] for a in self._delexicalised(user_acts) if a in usr_index]
        nz.extend(
            SYSTEM_OFFSET + sys_index[a] for a in self._delexicalised(prev_system_acts) if a in sys_index
        )
        for domain, slots in BELIEF_GROUPS:
            semi = belief_state[domain]["semi"]
            for slot, index in slots:
                if semi.get(slot):
                    nz.append(index)
        for i, key in enumerate(DB_KEYS):
            parts = belief_state[key]
            if parts["book"]["booked"]:
                nz.append(BOOKED_OFFSET + i)
            nz.append(DB_OFFSET + DB_BUCKETS * i + bucket(len(self._matching(key, parts["semi"]))))
        if terminated:
            nz.append(TERMINATED_INDEX)
        return nz

    def entities(self, domain: str, belief_state: BeliefState, rng: random.Random | None = None):
        """Records matching the belief state's informable slots of ``domain`` (``Hotel`` or ``hotel``)."""
        key = domain.lower()
        if key == "taxi":  # every taxi query draws a new taxi from rng
            return self.db.query(key, tuple(belief_state[key]["semi"].items()), rng=rng)
        return self._matching(key, belief_state[key]["semi"])

    def _matching(self, key: str, semi: Mapping[str, Any]) -> Sequence[Mapping[str, Any]]:
        """``db.query(key, semi's items)`` for a domain other than taxi, memoised (the database is read-only)."""
        items = tuple(semi.items())
        memo_key = (key, items)
        try:
            found = self._matches.get(memo_key)
        except TypeError:  # an unhashable value (a corpus annotation, say): ask the database
            return self.db.query(key, items)
        if found is None:
            if len(self._matches) >= MATCH_MEMO_LIMIT:
                self._matches.clear()
            found = self._matches[memo_key] = self.db.query(key, items)
        return found

    # ---- lexicalisation ---------------------------------------------------------------------------------

    def action_to_acts(
        self,
        action: np.ndarray | Iterable[int],
        belief_state: BeliefState,
        rng: random.Random,
        cur_domain: str | None = None,
    ) -> list[Act]:
        """Lexicalised acts of a 209-dim 0/1 vector (entries equal to 1 count) or of vocabulary indices."""
        if isinstance(action, np.ndarray) and action.shape == (ACTION_DIM,):
            indices = np.flatnonzero(action == 1).tolist()
        else:
            indices = sorted(set(map(int, action)))
        groups: dict[tuple[str, str], list[tuple[str, str]]] = {}
        for i in indices:
            domain, intent, slot, value = self._sys_parts[i]
            groups.setdefault((domain, intent), []).append((slot, value))

        entities: dict[str, Sequence[Mapping[str, Any]]] = {}
        for domain, _ in groups:
            if domain not in entities and domain not in UNQUERIED_DOMAINS:
                entities[domain] = self.entities(domain, belief_state, rng)
        if cur_domain and cur_domain not in entities:
            entities[cur_domain] = self.entities(cur_domain, belief_state, rng)

        acts: list[Act] = []
        for (domain, intent), pairs in groups.items():
            values = self._lexicalise_group(domain, intent, pairs, entities, belief_state, cur_domain)
            acts.extend([intent, domain, slot, value] for (slot, _), value in zip(pairs, values, strict=True))
        return acts

    def _lexicalise_group(
        self,
        domain: str,
        intent: str,
        pairs: list[tuple[str, str]],
        entities: Mapping[str, Sequence[Mapping[str, Any]]],
        belief_state: BeliefState,
        cur_domain: str | None,
    ) -> list[Any]:
        values = [value for _, value in pairs]
        if domain == "general":
            return values
        if intent in self._requestable:
            return ["?"] * len(pairs)
        booking = domain == "Booking"
        if booking:
            if not cur_domain:
                return values
            domain = cur_domain
        if intent.lower() in NEGATIVE_INTENTS:
            slots = belief_state[domain.lower()]["book" if booking else "semi"]
            fields = SYSTEM_ACT_SLOT["Booking" if booking else domain]
            return [self._from_belief(slots, fields, s, v) for s, v in pairs]
        found = entities[domain]
        fields = SYSTEM_ACT_SLOT[domain]
        out = []
        for slot, value in pairs:
            if value == "none":
                out.append(value)
            elif slot.lower() == "choice":
                out.append(str(len(found)))
            else:
                n = int(value) - 1
                field = fields.get(slot)
                if field is not None and n < len(found) and field in found[n]:
                    out.append(found[n][field])
                else:
                    out.append("none")
        return out

    @staticmethod
    def _from_belief(slots: Mapping[str, Any], fields: Mapping[str, str | None], slot: str, value: str):
        """A NoOffer/NoBook value: the belief's value of the slot; an unknown slot says ``none``."""
        if slot not in fields:
            return "none"
        field = fields[slot]
        return value if field is None else slots.get(field, value)
