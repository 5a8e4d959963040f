"""Rule-based belief tracker for the system side, behaving as ConvLab-2's ``RuleDST``.

User ``Inform`` acts fill the belief state (search slots normalised onto the ontology's values, booking slots kept
verbatim); user ``Request`` acts add ``{slot: 0}`` to the request state, which is never cleared. The tracker only
reads user acts: the previous system acts are stored beside the belief state for the vectoriser.

Speed: every ``(intent, domain, slot)`` is resolved once into a write rule, every normalised value is memoised,
and a fresh state is built from a precomputed template without deep copies.
"""

from __future__ import annotations

import logging
import re
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field, fields
from typing import Any

from rapidfuzz.distance import Levenshtein

from envs.acts import ActLike
from envs.multiwoz.ontology import SYSTEM_ACT_SLOT

logger = logging.getLogger(__name__)


# ConvLab-2's default belief state: domain -> (booking slots, search slots), in its key order.
BELIEF_TEMPLATE: Mapping[str, tuple[tuple[str, ...], tuple[str, ...]]] = {
    "police": ((), ()),
    "hotel": (
        ("people", "day", "stay"),
        ("name", "area", "parking", "pricerange", "stars", "internet", "type"),
    ),
    "attraction": ((), ("type", "name", "area")),
    "restaurant": (("people", "day", "time"), ("food", "pricerange", "name", "area")),
    "hospital": ((), ("department",)),
    "taxi": ((), ("leaveAt", "destination", "departure", "arriveBy")),
    "train": (("people",), ("leaveAt", "destination", "day", "arriveBy", "departure")),
}
UNTRACKED_DOMAINS = frozenset({"unk", "general", "booking"})
NORMALISE_CACHE_LIMIT = 100_000


def default_belief_state() -> dict[str, dict[str, dict[str, Any]]]:
    """An empty belief state: every slot ``""`` and no booked entities."""
    return {
        domain: {
            "book": {"booked": [], **dict.fromkeys(book_slots, "")},
            "semi": dict.fromkeys(semi_slots, ""),
        }
        for domain, (book_slots, semi_slots) in BELIEF_TEMPLATE.items()
    }


@dataclass(slots=True)
class DialogueState:
    """What the system policy sees. ``state["belief_state"]`` also works, as ConvLab-2 code reads it."""

    belief_state: dict[str, dict[str, dict[str, Any]]] = field(default_factory=default_belief_state)
    request_state: dict[str, dict[Any, int]] = field(default_factory=dict)
    user_action: list = field(default_factory=list)
    system_action: list = field(default_factory=list)
    terminated: bool = False

    def __getitem__(self, key: str) -> Any:
        if key not in _STATE_KEYS:
            raise KeyError(f"dialogue state has no {key!r}; expected one of {sorted(_STATE_KEYS)}")
        return getattr(self, key)


_STATE_KEYS = frozenset(f.name for f in fields(DialogueState))


# ---------------------------------------------------------------------------------------------------------------
# Value normalisation (ConvLab-2's normalize_value)


def _rewritings(text: str) -> list[str]:
    """Spellings to retry when the value itself matches nothing, in ConvLab-2's order."""
    variants = []
    if " 's" in text:
        variants.append(text.replace(" 's", "'s"))
    if " - " in text:
        variants.append(text.replace(" - ", "-"))
    if text in ("center", "centre"):
        variants.append("centre" if text == "center" else "center")
    if not text.startswith("the "):
        variants.append("the " + text)
    return variants


def _first_group(pattern: str) -> Callable[[str], str | None]:
    compiled = re.compile(pattern)

    def extract(text: str) -> str | None:
        found = compiled.search(text)
        return found.group(1) if found else None

    return extract


def _price(text: str) -> str | None:
    for extract in (_PRICE_WITH_COMMA, _PRICE):
        found = extract(text)
        if found is not None:
            return found
    if "1 pound" in text:
        return "1 pound"
    return "free" if "free" in text else None


_PRICE_WITH_COMMA = _first_group(r"(\d{1,2},\d{1,2} pounds)")
_PRICE = _first_group(r"(\d{1,2} pounds)")
_TIME = _first_group(r"(\d{1,2}:\d{1,2})")
# Last resort per (lower-cased) slot. ConvLab-2 also tries an upper-case ``TR\d{4}`` train-id pattern, which can
# never match the lower-cased text it is given, so it is left out.
SPECIAL_EXTRACTORS: Mapping[str, Callable[[str], str | None]] = {
    "arriveby": _TIME,
    "leaveat": _TIME,
    "price": _price,
    "entrance fee": _price,
    "duration": _first_group(r"(\d{1,2} minutes)"),
}


def _closest(text: str, candidates: tuple[str, ...], candidate_set: frozenset[str]) -> str | None:
    """Exact match, else the first candidate containing or contained in ``text``, else a near spelling.

    A near spelling is within edit distance 2 of a text of 10+ characters, or 3 of a text of 15+.
    """
    if text in candidate_set:
        return text
    for candidate in candidates:
        if candidate in text or text in candidate:
            return candidate
    if len(text) < 10:
        return None
    max_distance = 3 if len(text) >= 15 else 2
    for candidate in candidates:
        if Levenshtein.distance(text, candidate, score_cutoff=max_distance) <= max_distance:
            return candidate
    return None


class ValueNormalizer:
    """Maps a user's value onto ``value_dict.json``'s spelling of it; unmatched values come back lower-cased."""

    def __init__(self, value_dict: Mapping[str, Mapping[str, Sequence[str]]]):
        self._candidates = {
            domain: {
                slot: (tuple(values), frozenset(v for v in values if isinstance(v, str)))
                for slot, values in slots.items()
            }
            for domain, slots in value_dict.items()
        }
        self._cache: dict[tuple[str, str, str], str] = {}

    def __call__(self, domain: str, slot: str, value: str) -> str:
        key = (domain, slot, value)
        hit = self._cache.get(key)
        if hit is None:
            if len(self._cache) >= NORMALISE_CACHE_LIMIT:
                self._cache.clear()
            hit = self._cache[key] = self._normalise(domain, slot, value)
        return hit

    def _normalise(self, domain: str, slot: str, value: str) -> str:
        if domain not in self._candidates:
            raise ValueError(
                f"domain {domain!r} is not in value_dict.json; expected one of {sorted(self._candidates)}"
            )
        slot = slot.lower()
        text = " ".join(value.lower().split())
        if slot not in self._candidates[domain]:
            return text
        candidates, candidate_set = self._candidates[domain][slot]
        for attempt in (text, *_rewritings(text)):
            found = _closest(attempt, candidates, candidate_set)
            if found is not None:
                return found
        extractor = SPECIAL_EXTRACTORS.get(slot)
        found = extractor(text) if extractor else None
        if found is not None:
            return found
        logger.debug("no ontology value for %s-%s %r; keeping it as typed", domain, slot, text)
        return text


# ---------------------------------------------------------------------------------------------------------------
# The tracker

# A resolved act: (where, domain, key, normalise) with where in {"semi", "book", "request"}; None: ignore the act.
WriteRule = tuple[str, str, Any, bool] | None


class RuleDST:
    """ConvLab-2's rule DST: ``reset()`` per dialogue, ``update(user_acts, previous_system_acts)`` per round."""

    def __init__(self, value_dict: Mapping[str, Mapping[str, Sequence[str]]]):
        self.normalise = ValueNormalizer(value_dict)
        self._rules: dict[tuple[str, str, str], WriteRule] = {}
        self.state = DialogueState()

    @classmethod
    def from_data(cls, data) -> RuleDST:
        return cls(data.value_dict)

    def reset(self) -> DialogueState:
        self.state = DialogueState()
        return self.state

    def update(
        self, user_acts: Sequence[ActLike], system_acts_previous: Sequence[ActLike] | None = None
    ) -> DialogueState:
        """Track one user turn. ``system_acts_previous`` (the acts the user answered) is stored, not tracked."""
        state = self.state
        state.user_action = list(user_acts)
        if system_acts_previous is not None:
            state.system_action = list(system_acts_previous)
        for intent, domain, slot, value in user_acts:
            key = (intent, domain, slot)
            rule = (
                self._rules[key] if key in self._rules else self._rules.setdefault(key, self._resolve(*key))
            )
            if rule is None:
                continue
            where, domain_key, slot_key, normalise = rule
            if where == "request":
                state.request_state.setdefault(domain_key, {}).setdefault(slot_key, 0)
            else:
                if normalise:
                    value = self.normalise(domain_key, slot_key, value)
                state.belief_state[domain_key][where][slot_key] = value
        return state

    @staticmethod
    def _resolve(intent: str, domain: str, slot: str) -> WriteRule:
        """Where an act writes, following ConvLab-2's lookups (act slot -> database slot, then book/semi)."""
        domain_key = domain.lower()
        intent = intent.lower()
        if domain_key in UNTRACKED_DOMAINS or intent not in ("inform", "request"):
            return None
        slot_names = SYSTEM_ACT_SLOT.get(domain_key.capitalize())
        if slot_names is None:
            raise ValueError(
                f"user act names unknown domain {domain!r}; expected one of {list(BELIEF_TEMPLATE)}"
            )
        key = slot_names.get(slot, slot)
        if intent == "request":
            return ("request", domain_key, key, False)  # key may be None, as in ConvLab-2
        if key is None:
            return None
        book_slots, semi_slots = BELIEF_TEMPLATE[domain_key]
        if key in semi_slots:
            return ("semi", domain_key, key, True)
        if key in book_slots or key == "booked":
            return ("book", domain_key, key, False)
        if key.lower() in book_slots:
            return ("book", domain_key, key.lower(), False)
        if key == "trainID" and domain_key == "train":
            return ("book", domain_key, key, True)
        if key != "none":
            logger.debug("user informs %s-%s, which the belief state has no slot for", domain, slot)
        return None
