"""MultiWOZ names as tables: domains, and the three spellings of a slot.

A slot has an *act* spelling (``Addr``, ``Price`` — what dialogue acts carry), a *goal/database* spelling
(``address``, ``pricerange``) and, for the belief state, the database spelling again. These tables translate
between them; every other module looks names up here instead of hard-coding them.
"""

from __future__ import annotations

from collections.abc import Mapping
from types import MappingProxyType

DOMAINS = ("attraction", "hotel", "restaurant", "train", "taxi", "hospital", "police")
BOOKABLE_DOMAINS = ("hotel", "restaurant", "train")

# Goal/database slot -> act slot, for acts the *user* emits (ConvLab-2's REF_USR_DA).
USER_ACT_SLOT = MappingProxyType(
    {
        "Attraction": {
            "area": "Area",
            "type": "Type",
            "name": "Name",
            "entrance fee": "Fee",
            "address": "Addr",
            "postcode": "Post",
            "phone": "Phone",
        },
        "Hospital": {"department": "Department", "address": "Addr", "postcode": "Post", "phone": "Phone"},
        "Hotel": {
            "type": "Type",
            "parking": "Parking",
            "pricerange": "Price",
            "internet": "Internet",
            "area": "Area",
            "stars": "Stars",
            "name": "Name",
            "stay": "Stay",
            "day": "Day",
            "people": "People",
            "address": "Addr",
            "postcode": "Post",
            "phone": "Phone",
        },
        "Police": {"address": "Addr", "postcode": "Post", "phone": "Phone", "name": "Name"},
        "Restaurant": {
            "food": "Food",
            "pricerange": "Price",
            "area": "Area",
            "name": "Name",
            "time": "Time",
            "day": "Day",
            "people": "People",
            "phone": "Phone",
            "postcode": "Post",
            "address": "Addr",
        },
        "Taxi": {
            "leaveAt": "Leave",
            "destination": "Dest",
            "departure": "Depart",
            "arriveBy": "Arrive",
            "car type": "Car",
            "phone": "Phone",
        },
        "Train": {
            "destination": "Dest",
            "day": "Day",
            "arriveBy": "Arrive",
            "departure": "Depart",
            "leaveAt": "Leave",
            "people": "People",
            "duration": "Time",
            "price": "Ticket",
            "trainID": "Id",
        },
    }
)

# Act slot -> database field, for acts the *system* emits (ConvLab-2's REF_SYS_DA). ``None``: no field.
SYSTEM_ACT_SLOT: Mapping[str, Mapping[str, str | None]] = MappingProxyType(
    {
        "Attraction": {
            "Addr": "address",
            "Area": "area",
            "Choice": "choice",
            "Fee": "entrance fee",
            "Name": "name",
            "Phone": "phone",
            "Post": "postcode",
            "Price": "pricerange",
            "Type": "type",
            "none": None,
            "Open": None,
        },
        "Hospital": {
            "Department": "department",
            "Addr": "address",
            "Post": "postcode",
            "Phone": "phone",
            "none": None,
        },
        "Booking": {
            "Day": "day",
            "Name": "name",
            "People": "people",
            "Ref": "Ref",
            "Stay": "stay",
            "Time": "time",
            "none": None,
        },
        "Hotel": {
            "Addr": "address",
            "Area": "area",
            "Choice": "choice",
            "Internet": "internet",
            "Name": "name",
            "Parking": "parking",
            "Phone": "phone",
            "Post": "postcode",
            "Price": "pricerange",
            "Ref": "Ref",
            "Stars": "stars",
            "Type": "type",
            "none": None,
        },
        "Restaurant": {
            "Addr": "address",
            "Area": "area",
            "Choice": "choice",
            "Name": "name",
            "Food": "food",
            "Phone": "phone",
            "Post": "postcode",
            "Price": "pricerange",
            "Ref": "Ref",
            "none": None,
        },
        "Taxi": {
            "Arrive": "arriveBy",
            "Car": "taxi_types",
            "Depart": "departure",
            "Dest": "destination",
            "Leave": "leaveAt",
            "Phone": "taxi_phone",
            "none": None,
        },
        "Train": {
            "Arrive": "arriveBy",
            "Choice": "choice",
            "Day": "day",
            "Depart": "departure",
            "Dest": "destination",
            "Id": "trainID",
            "Leave": "leaveAt",
            "People": "people",
            "Ref": "Ref",
            "Time": "duration",
            "none": None,
            "Ticket": "price",
        },
        "Police": {"Addr": "address", "Post": "postcode", "Phone": "phone"},
    }
)


def _system_slot_to_goal_slot() -> dict[str, dict[str, str]]:
    """System act slot (lower case) -> the user goal's slot name, as the agenda user reads system acts.

    Same as SYSTEM_ACT_SLOT with lower-cased keys, except that a reference number is the goal's ``ref``,
    ``none`` maps to itself and taxi acts name the goal's ``phone`` / ``car type``.
    """
    table: dict[str, dict[str, str]] = {}
    for domain, slots in SYSTEM_ACT_SLOT.items():
        row = {
            act.lower(): ("ref" if act == "Ref" else field)
            for act, field in slots.items()
            if field is not None
        }
        row["none"] = "none"
        table[domain.lower()] = row
    table["taxi"]["phone"] = "phone"
    table["taxi"]["car"] = "car type"
    return table


SYSTEM_SLOT_TO_GOAL_SLOT = MappingProxyType(_system_slot_to_goal_slot())

# Values that say "no constraint" (the database and the evaluator ignore such constraints).
NO_CONSTRAINT_VALUES = frozenset({"", "dont care", "not mentioned", "don't care", "dontcare", "do n't care"})
