"""The seven MultiWOZ databases with ConvLab-2's query semantics, indexed instead of scanned.

A constraint ``(slot, value)`` keeps a record when any of these holds (ConvLab-2's rules):
the value says "no constraint" (``dontcare``, ``""``, ...); the record has no such field, or the comparison
cannot be made (a non-string value, an unparsable time); the record's field is ``?``; for ``leaveAt`` the
record leaves at or after the wanted time, for ``arriveBy`` it arrives at or before it; otherwise the
stripped, lower-cased values are equal (hard constraints) or their fuzzy partial ratio reaches the threshold
(soft constraints, used by the evaluator). ``area`` ``center`` is read as ``centre`` in hard constraints.

Each constraint becomes a bit mask over the domain's records (cached), a query is the AND of its masks
(memoised), and matches are returned as read-only views in database order carrying ``Ref`` (the record's
index, zero-padded to 8 digits). Views are shared between calls: never mutate their nested values.
"""

from __future__ import annotations

import random
from collections.abc import Iterable, Mapping, Sequence
from difflib import SequenceMatcher
from types import MappingProxyType
from typing import Any

from rapidfuzz import fuzz

from envs.multiwoz.ontology import NO_CONSTRAINT_VALUES

Record = Mapping[str, Any]
Constraint = tuple[str, Any]

TIME_COMPARISONS = {
    "leaveAt": lambda wanted, actual: wanted <= actual,  # leave no earlier than wanted
    "arriveBy": lambda wanted, actual: wanted >= actual,  # arrive no later than wanted
}
OPEN_SLOTS = ("destination", "departure")  # ignored when a query asks to ignore open slots
FREE_DOMAINS = ("police",)  # every query returns the whole table
MEMO_LIMIT = 200_000


def parse_clock(value: Any) -> int | None:
    """``"09:45"`` -> 945, as ConvLab-2 compares times; None when the value is no such time."""
    try:
        hours, minutes = value.split(":")[:2]
        return int(hours) * 100 + int(minutes)
    except (AttributeError, ValueError, TypeError):
        return None


def partial_ratio(wanted: str, actual: str) -> int:
    """fuzzywuzzy's ``partial_ratio`` (difflib flavour), which ConvLab-2's soft constraints were recorded with.

    rapidfuzz's partial ratio also scores windows that overhang either end of the longer string, and so can
    accept what fuzzywuzzy rejected (e.g. two different 11-digit phone numbers sharing a prefix).
    """
    if wanted == actual:
        return 100
    if not wanted or not actual:
        return 0
    shorter, longer = (wanted, actual) if len(wanted) <= len(actual) else (actual, wanted)
    best = 0.0
    for short_start, long_start, _ in SequenceMatcher(None, shorter, longer).get_matching_blocks():
        start = max(long_start - short_start, 0)
        ratio = SequenceMatcher(None, shorter, longer[start : start + len(shorter)]).ratio()
        if ratio > 0.995:
            return 100
        best = max(best, ratio)
    return round(100 * best)


def fuzzy_match(wanted: str, actual: str, threshold: int) -> bool:
    """``partial_ratio(wanted, actual) >= threshold``, skipping the slow difflib ratios rapidfuzz rules out.

    rapidfuzz scores an optimal (LCS) alignment, which bounds difflib's greedy one from above: its partial ratio
    (for needles up to 64 characters, over a superset of fuzzywuzzy's windows) bounds the whole score, its plain
    ratio bounds each window's.
    """
    if wanted == actual or not wanted or not actual:
        return partial_ratio(wanted, actual) >= threshold
    if min(len(wanted), len(actual)) <= 64 and fuzz.partial_ratio(wanted, actual) < threshold - 1:
        return False
    shorter, longer = (wanted, actual) if len(wanted) <= len(actual) else (actual, wanted)
    tried = set()
    for short_start, long_start, _ in SequenceMatcher(None, shorter, longer).get_matching_blocks():
        start = max(long_start - short_start, 0)
        if start in tried:
            continue
        tried.add(start)
        window = longer[start : start + len(shorter)]
        if fuzz.ratio(shorter, window) < threshold - 1:
            continue
        ratio = SequenceMatcher(None, shorter, window).ratio()
        if ratio > 0.995 or round(100 * ratio) >= threshold:
            return True
    return False


_FUZZY_MEMO: dict[tuple[str, str, int], bool] = {}


def is_no_constraint(value: Any) -> bool:
    return isinstance(value, str) and value in NO_CONSTRAINT_VALUES


class _Table:
    """One domain's records with per-field indexes; masks are Python ints, bit i = record i."""

    def __init__(self, records: Sequence[Mapping[str, Any]], with_ref: bool):
        self.records = tuple(
            MappingProxyType({**record, "Ref": f"{i:08d}"} if with_ref else dict(record))
            for i, record in enumerate(records)
        )
        self.all_mask = (1 << len(records)) - 1
        self._lower_keys = [{k.lower() for k in record} for record in records]
        self._field_index: dict[str, tuple[int, dict[str, int], list[str | None]]] = {}
        self._mask_memo: dict[tuple, int] = {}
        self._clocks: dict[str, list[int | None]] = {}

    def _index(self, key: str) -> tuple[int, dict[str, int], list[str | None]]:
        """For ``key``: (mask of records any comparison keeps, {normalised value: mask}, each record's value).

        A record is always kept when it lacks the field, its value is no string, or its value is ``?``.
        """
        if key not in self._field_index:
            always = 0
            by_value: dict[str, int] = {}
            norms: list[str | None] = []
            for i, record in enumerate(self.records):
                value = record.get(key)
                if (
                    key.lower() not in self._lower_keys[i]
                    or not isinstance(value, str)
                    or value.strip() == "?"
                ):
                    always |= 1 << i
                    norms.append(None)
                else:
                    norm = value.strip().lower()
                    by_value[norm] = by_value.get(norm, 0) | (1 << i)
                    norms.append(norm)
            self._field_index[key] = (always, by_value, norms)
        return self._field_index[key]

    def constraint_mask(self, key: str, value: Any, fuzzy_ratio: int, ignore_open: bool) -> int:
        """Records a hard constraint keeps (memoised per constraint)."""
        if is_no_constraint(value):
            return self.all_mask
        memo_key = (key, value, ignore_open)
        mask = self._mask_memo.get(memo_key)
        if mask is None:
            mask = self._compute_mask(key, value, ignore_open)
            self._mask_memo[memo_key] = mask
        return mask

    def _compute_mask(self, key: str, value: Any, ignore_open: bool) -> int:
        if key in TIME_COMPARISONS:
            return self._time_mask(key, value)
        if (ignore_open and key in OPEN_SLOTS) or not isinstance(value, str):
            return self.all_mask
        always, by_value, _ = self._index(key)
        return always | by_value.get(value.strip().lower(), 0)

    def soft_filter(self, mask: int, key: str, value: Any, fuzzy_ratio: int, ignore_open: bool) -> int:
        """The records of ``mask`` a fuzzy constraint keeps.

        Only the candidates are scored (fuzzy scores are slow), and each (wanted, actual) pair only once.
        """
        if (
            key in TIME_COMPARISONS
            or is_no_constraint(value)
            or not isinstance(value, str)
            or (ignore_open and key in OPEN_SLOTS)
        ):
            return mask & self.constraint_mask(key, value, fuzzy_ratio, ignore_open)
        wanted = value.strip().lower()
        always, _, norms = self._index(key)
        kept = mask & always
        candidates = mask & ~always
        while candidates:
            low = candidates & -candidates
            candidates ^= low
            norm = norms[low.bit_length() - 1]
            assert norm is not None  # None marks the records of ``always``, never a candidate
            pair = (wanted, norm, fuzzy_ratio)
            matched = _FUZZY_MEMO.get(pair)
            if matched is None:
                matched = _FUZZY_MEMO[pair] = fuzzy_match(*pair)
            if matched:
                kept |= low
        return kept

    def _time_mask(self, key: str, value: Any) -> int:
        wanted = parse_clock(value)
        if wanted is None:
            return self.all_mask
        if key not in self._clocks:  # each record's time, parsed once; None: the record always passes
            self._clocks[key] = [
                parse_clock(record.get(key)) if key.lower() in lower_keys else None
                for record, lower_keys in zip(self.records, self._lower_keys, strict=True)
            ]
        keep = TIME_COMPARISONS[key]
        mask = 0
        for i, actual in enumerate(self._clocks[key]):
            if actual is None or keep(wanted, actual):
                mask |= 1 << i
        return mask

    def select(self, mask: int) -> tuple[Record, ...]:
        out = []
        while mask:
            low = mask & -mask
            out.append(self.records[low.bit_length() - 1])
            mask ^= low
        return tuple(out)


class Database:
    """Query the MultiWOZ databases: ``query(domain, constraints)`` -> matching records, in database order."""

    def __init__(self, tables: Mapping[str, Any]):
        taxi = tables["taxi"]
        self._taxi_colors = tuple(taxi["taxi_colors"])
        self._taxi_types = tuple(taxi["taxi_types"])
        self._tables = {
            domain: _Table(records, with_ref=domain not in ("police", "hospital"))
            for domain, records in tables.items()
            if domain != "taxi"
        }
        self._memo: dict[tuple, tuple[Record, ...]] = {}

    @classmethod
    def from_data(cls, data) -> Database:
        return cls(data.databases)

    def records(self, domain: str) -> tuple[Record, ...]:
        return self._tables[domain].records

    def taxi(self, rng: random.Random) -> Record:
        """A fresh taxi: colour, type, 11-digit phone, drawn from ``rng`` in ConvLab-2's order."""
        color = rng.choice(self._taxi_colors)
        car = rng.choice(self._taxi_types)
        phone = "".join(str(rng.randint(1, 9)) for _ in range(11))
        return MappingProxyType({"taxi_colors": color, "taxi_types": car, "taxi_phone": phone})

    def query(
        self,
        domain: str,
        constraints: Iterable[Constraint],
        *,
        soft_constraints: Iterable[Constraint] = (),
        fuzzy_ratio: int = 60,
        ignore_open: bool = False,
        rng: random.Random | None = None,
    ) -> tuple[Record, ...]:
        """Records of ``domain`` that satisfy every constraint; ``taxi`` draws one new taxi from ``rng``."""
        if domain == "taxi":
            if rng is None:
                raise ValueError("a taxi query draws a random taxi: pass rng=random.Random(...)")
            return (self.taxi(rng),)
        if domain not in self._tables:
            raise ValueError(f"unknown domain {domain!r}: expected one of {sorted(self._tables) + ['taxi']}")
        constraints = tuple(tuple(c) for c in constraints)
        soft_constraints = tuple(tuple(c) for c in soft_constraints)
        table = self._tables[domain]
        if domain in FREE_DOMAINS:
            return table.records
        if domain == "hospital":
            return self._hospital(table, constraints)
        key: tuple | None
        key = (domain, constraints, soft_constraints, fuzzy_ratio, ignore_open)
        try:
            hit = self._memo.get(key)
        except TypeError:  # an unhashable value: answer without memoising
            key, hit = None, None
        if hit is not None:
            return hit
        mask = table.all_mask
        for slot, value in constraints:
            if slot == "area" and value == "center":
                value = "centre"
            mask &= table.constraint_mask(slot, value, fuzzy_ratio, ignore_open)
        for slot, value in soft_constraints:
            mask = table.soft_filter(mask, slot, value, fuzzy_ratio, ignore_open)
        result = table.select(mask)
        if key is not None:
            if len(self._memo) >= MEMO_LIMIT:
                self._memo.clear()
            self._memo[key] = result
        return result

    @staticmethod
    def _hospital(table: _Table, constraints: tuple[Constraint, ...]) -> tuple[Record, ...]:
        department = None
        for slot, value in constraints:
            if slot == "department":
                department = value
        if not department:
            return table.records
        wanted = department.strip().lower()
        return tuple(r for r in table.records if r["department"].lower() == wanted)
