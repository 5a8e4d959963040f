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
FREE_DOMAINS = ("police",)  # every query returns the whole table
MEMO_LIMIT = 200_000


def parse_clock(value: Any) -> int | None:
    """``"09:45"`` -> 945, as ConvLab-2 compares times; None when the value is no such time."""
    try:
        hours, minutes = value.split(":")[:2]
        return int(hours) * 100 + int(minutes)
    except (AttributeError, ValueError, TypeError):
        return None


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
        self._field_index: dict[str, tuple[int, dict[str, int]]] = {}
        self._mask_memo: dict[tuple, int] = {}

    def _index(self, key: str) -> tuple[int, dict[str, int]]:
        """(mask of records a hard constraint on ``key`` always keeps, {normalised value: mask})."""
        if key not in self._field_index:
            always, by_value = 0, {}
            for i, record in enumerate(self.records):
                bit = 1 << i
                value = record.get(key)
                if key.lower() not in self._lower_keys[i] or not isinstance(value, str) or value.strip() == "?":
                    always |= bit
                else:
                    norm = value.strip().lower()
                    by_value[norm] = by_value.get(norm, 0) | bit
            self._field_index[key] = (always, by_value)
        return self._field_index[key]

    def constraint_mask(self, key: str, value: Any, soft: bool, fuzzy_ratio: int, ignore_open: bool) -> int:
        if is_no_constraint(value):
            return self.all_mask
        memo_key = (key, value, soft, fuzzy_ratio, ignore_open)
        mask = self._mask_memo.get(memo_key)
        if mask is None:
            mask = self._compute_mask(key, value, soft, fuzzy_ratio, ignore_open)
            self._mask_memo[memo_key] = mask
        return mask

    def _compute_mask(self, key: str, value: Any, soft: bool, fuzzy_ratio: int, ignore_open: bool) -> int:
        if key in TIME_COMPARISONS:
            return self._time_mask(key, value)
        if ignore_open and key in ("destination", "departure"):
            return self.all_mask
        if not isinstance(value, str):
            return self.all_mask
        wanted = value.strip().lower()
        always, by_value = self._index(key)
        if not soft:
            return always | by_value.get(wanted, 0)
        mask = always
        for norm, value_mask in by_value.items():
            if fuzz.partial_ratio(wanted, norm) >= fuzzy_ratio:
                mask |= value_mask
        return mask

    def _time_mask(self, key: str, value: Any) -> int:
        wanted = parse_clock(value)
        mask = 0
        for i, record in enumerate(self.records):
            if key.lower() not in self._lower_keys[i]:
                mask |= 1 << i
                continue
            actual = parse_clock(record.get(key))
            if wanted is None or actual is None or TIME_COMPARISONS[key](wanted, actual):
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
            mask &= table.constraint_mask(slot, value, False, fuzzy_ratio, ignore_open)
        for slot, value in soft_constraints:
            mask &= table.constraint_mask(slot, value, True, fuzzy_ratio, ignore_open)
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
