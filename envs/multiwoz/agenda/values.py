"""Slot values the agenda user reads: the special values, and a system's value -> the canonical spelling.

A goal slot holding ``?`` (asked, not yet answered), ``dontcare``, ``none`` or ``no`` is still open; ``yes`` marks a
booking made. ``ValueNormalizer`` maps what the system said onto ``value_set.json``, as ConvLab-2's user reads it.
"""

from __future__ import annotations

import logging
import re
from bisect import bisect_right
from collections.abc import Mapping, Sequence
from itertools import accumulate

logger = logging.getLogger(__name__)

UNKNOWN = "?"
DONT_CARE = "dontcare"
NONE = "none"
BOOKED = "yes"
NOT_SURE_VALUES = frozenset(
    {UNKNOWN, DONT_CARE, NONE, "no"}
)  # a goal slot holding one of these is still open
YES_NO_SLOTS = frozenset({"parking", "internet"})  # the system's "none" for these reads as "yes"
TIME_PATTERN = re.compile(r"(\d{1,2}:\d{1,2})")
NORMALIZE_MEMO_LIMIT = 100_000


def _squeeze(text: str) -> str:
    return " ".join(text.split())


class CanonicalValues:
    """One slot's canonical values in sorted order, indexed to find the first that contains a text or that the
    text contains without scanning them all (the train id list has thousands)."""

    SEPARATOR = "\x00"  # never inside a value, so a search cannot match across two values

    def __init__(self, values: Sequence[str]):
        raw = sorted(set(values) | {value.lower() for value in values})
        self.raw = frozenset(raw)
        self.squeezed = tuple(_squeeze(value) for value in raw)
        self.first_index: dict[str, int] = {}
        for index, value in enumerate(self.squeezed):
            self.first_index.setdefault(value, index)
        self.lengths = sorted({len(value) for value in self.squeezed})
        self.joined = self.SEPARATOR.join(self.squeezed)
        self.starts = list(accumulate((len(value) + 1 for value in self.squeezed[:-1]), initial=0))

    def first_match(self, text: str) -> str | None:
        """First value containing, or contained in, ``text`` or ``text`` without spaces (as typed, then lower)."""
        lower = text.lower()
        for variant in (text, lower) if lower != text else (text,):
            forms = {_squeeze(variant), "".join(variant.split())}
            best = min(min(self._first_containing(form), self._first_contained_in(form)) for form in forms)
            if best < len(self.squeezed):
                return self.squeezed[best]
        return None

    def _first_containing(self, text: str) -> int:
        if self.SEPARATOR in text:
            return next((i for i, value in enumerate(self.squeezed) if text in value), len(self.squeezed))
        position = self.joined.find(text)
        return len(self.squeezed) if position < 0 else bisect_right(self.starts, position) - 1

    def _first_contained_in(self, text: str) -> int:
        best = len(self.squeezed)
        for length in self.lengths:
            if length > len(text):
                break
            for start in range(len(text) - length + 1):
                index = self.first_index.get(text[start : start + length])
                if index is not None and index < best:
                    best = index
        return best


class ValueNormalizer:
    """Maps a value the system uttered onto the canonical value set, as ConvLab-2's user reads it.

    A value already in the set stays; otherwise the first canonical value (in sorted order) that contains it or
    is contained in it, ignoring whitespace differences, then case; then the same after ``" 's"`` -> ``"'s"`` and
    ``" - "`` -> ``"-"``; otherwise the value is kept as it is.
    """

    def __init__(self, value_set: Mapping[str, Mapping[str, Sequence[str]]]):
        self._tables = {
            domain: {slot: CanonicalValues(values) for slot, values in slots.items()}
            for domain, slots in value_set.items()
        }
        self._memo: dict[tuple[str, str, str], str] = {}

    def __call__(self, domain: str, intent: str, slot: str, value: str) -> str:
        if intent == "request":
            return UNKNOWN
        slots = self._tables.get(domain)
        if slots is None or slot not in slots:
            return value
        if slot in YES_NO_SLOTS and value == NONE:
            return BOOKED
        canonical = slots[slot]
        if value in canonical.raw:
            return value
        key = (domain, slot, value)
        found = self._memo.get(key)
        if found is None:
            found = self._closest(canonical, value)
            if len(self._memo) >= NORMALIZE_MEMO_LIMIT:
                self._memo.clear()
            self._memo[key] = found
        return found

    @staticmethod
    def _closest(canonical: CanonicalValues, value: str) -> str:
        for variant in (value, *_spelling_variants(value)):
            match = canonical.first_match(variant)
            if match is not None:
                return match
        if not TIME_PATTERN.search(value.strip()):
            logger.debug("value %r is not in the value set; kept as it is", value)
        return value


def _spelling_variants(value: str) -> list[str]:
    variants = []
    if " 's" in value:
        variants.append(value.replace(" 's", "'s"))
    if " - " in value:
        variants.append(value.replace(" - ", "-"))
    return variants
