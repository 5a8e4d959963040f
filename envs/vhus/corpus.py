"""VHUS token sequences: goals, system acts and user acts written as short token strings, and back.

VHUS never sees slot values. A goal is written as its slot names per section (``hotel_info ( area stars )``),
a system act as ``domain-intent ( slot=Relation )`` where the relation says how the value stands to the goal
(``InConstraint[R]`` right, ``[W]`` wrong, ``[C]`` both, ``InRequest``, ``NotInGoal``, ``Unknow``), and a user
act as ``domain-intent ( slot=Source )`` where the source names the goal section the value comes from
(``InInfo``, ``InBook``, ``InFail_info``, ``InFail_book``, ``DoNotCare``). Decoding reads the value back from
the goal. The token vocabularies are fixed (``vhus_vocab.json``), so the encoding follows ConvLab-2's
``UserDataManager`` exactly, quirks included: slot names are compared in lower case against goal keys that
are camel-cased for ``leaveAt`` / ``arriveBy`` / ``trainID``, so those user slots always encode as
``DoNotCare`` and those system slots as ``NotInGoal`` (the vocabulary has no other tokens for them).
"""

from __future__ import annotations

import logging
import random
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from types import MappingProxyType
from typing import Any

from envs.acts import Act, ActLike

logger = logging.getLogger(__name__)

PAD, UNK, SOS, EOS = 0, 1, 2, 3
SPECIAL_TOKENS = ("<PAD>", "<UNK>", "<SOS>", "<EOS>")
OPEN, CLOSE = "(", ")"
STRUCTURE_TOKENS = frozenset({*SPECIAL_TOKENS, OPEN, CLOSE})

GOAL_DOMAINS = frozenset({"attraction", "hospital", "hotel", "police", "restaurant", "taxi", "train"})
ACT_DOMAINS = GOAL_DOMAINS | {"booking", "general"}
GOAL_SECTIONS = ("info", "fail_info", "book", "fail_book")  # constraint sections, in encoding order
GOAL_SECTION_TOKENS = frozenset(f"{d}_{s}" for d in GOAL_DOMAINS for s in (*GOAL_SECTIONS, "reqt"))
DONT_CARE = "dontcare"
REQUEST = "request"

# Act slot (lower case) -> goal slot, as ConvLab-2's VHUS reads *system* acts; None: the slot carries no value.
_SYSTEM_TABLE = {
    "attraction": "addr:address area choice fee:entrance_fee name phone post:postcode price:pricerange type",
    "booking": "day name people ref stay time",
    "hospital": "department addr:address post:postcode phone",
    "hotel": "addr:address area choice internet name parking phone post:postcode price:pricerange ref stars type",
    "restaurant": "addr:address area choice name food phone post:postcode price:pricerange ref",
    "taxi": "arrive:arriveby car:car_type depart:departure dest:destination leave:leaveat phone",
    "train": "arrive:arriveby choice day depart:departure dest:destination id:trainid trainid leave:leaveat "
    "people ref ticket:price time:duration duration",
    "police": "addr:address post:postcode phone",
}
# The same for *user* acts.
_USER_TABLE = {
    "attraction": "area name type addr:address fee:entrance_fee phone post:postcode",
    "hospital": "department addr:address phone post:postcode",
    "hotel": "area internet name parking price:pricerange stars type addr:address phone post:postcode day "
    "people stay",
    "police": "addr:address phone post:postcode",
    "restaurant": "area day food name people price:pricerange time addr:address phone post:postcode",
    "taxi": "arrive:arriveby depart:departure dest:destination leave:leaveat car:car_type phone",
    "train": "time:duration arrive:arriveby day ref depart:departure dest:destination leave:leaveat people "
    "duration price choice trainid ticket:price id:trainid",
}


def _slot_table(spec: Mapping[str, str]) -> Mapping[str, Mapping[str, str | None]]:
    """``"act:goal_slot"`` entries (``_`` for a space; a bare name maps to itself); ``none`` maps to None."""
    table = {}
    for domain, entries in spec.items():
        row: dict[str, str | None] = {"none": None}
        for entry in entries.split():
            act_slot, _, goal_slot = entry.partition(":")
            row[act_slot] = (goal_slot or act_slot).replace("_", " ")
        table[domain] = MappingProxyType(row)
    return MappingProxyType(table)


SYSTEM_SLOT_TO_GOAL = _slot_table(_SYSTEM_TABLE)
USER_SLOT_TO_GOAL = _slot_table(_USER_TABLE)
UNKNOWN_SLOT = "Unknow"  # ConvLab-2's spelling; it is in the vocabularies

# User-act value sources -> the goal section the value is read from when decoding.
SOURCE_SECTIONS = MappingProxyType(
    {
        "InInfo": "info",
        "InFail_info": "fail_info",
        "InBook": "book",
        "InFail_book": "fail_book",
    }
)
# Goal slots the encoder can never find (see the module docstring): "DoNotCare" for them may mean the goal value.
CASE_BLIND_GOAL_SLOTS = frozenset({"leaveat", "arriveby", "trainid"})

ActGroups = dict[str, list[list[str]]]  # {"domain-intent": [[slot, value], ...]}, all lower case


# ---------------------------------------------------------------------------------------------------------------
# Goals and acts -> tokens


def goal_tokens(goal: Mapping[str, Any]) -> list[str]:
    """Domains in alphabetical order; per domain the constraint sections (sorted slots) then ``reqt``."""
    tokens: list[str] = []
    for domain in sorted(goal):
        parts = goal[domain]
        if domain not in GOAL_DOMAINS or not parts:
            continue
        for section in GOAL_SECTIONS:
            slots = sorted(slot for slot, value in parts.get(section, {}).items() if isinstance(value, str))
            if slots:
                tokens += [f"{domain}_{section}", OPEN, *slots, CLOSE]
        requested = list(parts.get("reqt", ()))
        if requested:
            tokens += [f"{domain}_reqt", OPEN, *requested, CLOSE]
    return tokens


def group_acts(acts: Iterable[ActLike]) -> ActGroups:
    """``[intent, domain, slot, value]`` acts -> ``{"domain-intent": [[slot, value], ...]}`` in lower case."""
    grouped: ActGroups = {}
    for intent, domain, slot, value in acts:
        grouped.setdefault(f"{domain}-{intent}".lower(), []).append([str(slot).lower(), str(value).lower()])
    return grouped


def group_corpus_acts(dialog_act: Mapping[str, Sequence[Sequence[str]]]) -> ActGroups:
    """A corpus turn's ``{"Hotel-Inform": [["Area", "east"]]}`` in the same lower-case form."""
    return {
        key.lower(): [[str(s).lower(), str(v).lower()] for s, v in pairs] for key, pairs in dialog_act.items()
    }


def _goal_checks(
    goal: Mapping[str, Any], domain: str, goal_slot: str, value: str, normalise
) -> dict[str, bool]:
    """Per constraint section holding ``goal_slot``: does the goal's value equal ``value``?"""
    parts = goal.get(domain) or {}
    return {
        section: normalise(str(parts[section][goal_slot])) == normalise(value)
        for section in GOAL_SECTIONS
        if goal_slot in (parts.get(section) or {})
    }


def _system_relation(domain: str, slot: str, value: str, goal: Mapping[str, Any]) -> str | None:
    goal_slot = SYSTEM_SLOT_TO_GOAL.get(domain, {}).get(slot, UNKNOWN_SLOT)
    if goal_slot is None or goal_slot == UNKNOWN_SLOT:
        return goal_slot
    checks = _goal_checks(goal, domain, goal_slot, value, str.lower).values()
    if checks:
        right, wrong = True in checks, False in checks
        return "InConstraint" + ("[C]" if right and wrong else "[R]" if right else "[W]")
    if goal_slot in (goal.get(domain) or {}).get("reqt", ()):
        return "InRequest"
    return "NotInGoal"


def _user_source(domain: str, slot: str, value: str, goal: Mapping[str, Any]) -> str | None:
    goal_slot = USER_SLOT_TO_GOAL.get(domain, {}).get(slot, UNKNOWN_SLOT)
    if goal_slot is None or goal_slot == UNKNOWN_SLOT:
        return goal_slot
    checks = _goal_checks(goal, domain, goal_slot, value, lambda text: text.replace(" ", "").lower())
    if not checks:
        return "DoNotCare"
    matching = [section for section, equal in checks.items() if equal] or list(checks)
    return "In" + matching[0].capitalize()


def _act_tokens(grouped: ActGroups, goal: Mapping[str, Any], relation) -> list[str]:
    tokens: list[str] = []
    for key, pairs in sorted(grouped.items()):
        domain, _, intent = key.partition("-")
        if domain not in ACT_DOMAINS:
            continue
        tokens += [key, OPEN]
        if domain != "general":
            for slot, value in sorted(pairs, key=lambda pair: pair[0]):
                if intent == REQUEST:
                    tokens.append(slot)
                    continue
                label = relation(domain, slot, value, goal)
                if label is not None:
                    tokens.append(f"{slot}={label}")
        tokens.append(CLOSE)
    return tokens


def system_tokens(grouped: ActGroups, goal: Mapping[str, Any]) -> list[str]:
    return _act_tokens(grouped, goal, _system_relation)


def user_tokens(grouped: ActGroups, goal: Mapping[str, Any]) -> list[str]:
    return _act_tokens(grouped, goal, _user_source)


# ---------------------------------------------------------------------------------------------------------------
# Tokens -> user acts


def _goal_value(goal: Mapping[str, Any], domain: str, goal_slot: str, section: str) -> str | None:
    values = (goal.get(domain) or {}).get(section) or {}
    value = values.get(goal_slot)
    if value is None and goal_slot in CASE_BLIND_GOAL_SLOTS:
        value = next((v for k, v in values.items() if k.lower() == goal_slot), None)
    return value if isinstance(value, str) else None


def _decode_value(domain: str, slot: str, source: str, goal: Mapping[str, Any]) -> str | None:
    goal_slot = USER_SLOT_TO_GOAL.get(domain, {}).get(slot)
    if goal_slot is None:
        return None
    if source == "DoNotCare":
        if goal_slot in CASE_BLIND_GOAL_SLOTS:  # the corpus label hid the goal's own value (module docstring)
            return _goal_value(goal, domain, goal_slot, "info") or DONT_CARE
        return DONT_CARE
    section = SOURCE_SECTIONS.get(source)
    return None if section is None else _goal_value(goal, domain, goal_slot, section)


def parse_user_tokens(tokens: Sequence[str], goal: Mapping[str, Any]) -> list[Act]:
    """Decoded tokens -> ``[intent, domain, slot, value]`` acts; pieces that make no act are dropped (debug log).

    General acts (bye, thank, greet) become ``[intent, "general", "none", "none"]``; a domain act with no slot
    that decodes becomes ``[Intent, Domain, "none", "none"]``.
    """
    acts: list[Act] = []
    seen: set[tuple[str, ...]] = set()
    current: tuple[str, str] | None = None
    filled = False

    def emit(act: Act) -> None:
        key = tuple(act)
        if key not in seen:
            seen.add(key)
            acts.append(act)

    def close_current() -> None:
        if current is not None and not filled:
            domain, intent = current
            if domain == "general":
                emit([intent, "general", "none", "none"])
            else:
                emit([intent.capitalize(), domain.capitalize(), "none", "none"])

    for token in tokens:
        if token in STRUCTURE_TOKENS:
            continue
        if "-" in token and "=" not in token:
            domain, _, intent = token.partition("-")
            close_current()
            if domain in ACT_DOMAINS and domain != "booking" and intent:
                current, filled = (domain, intent), False
            else:
                logger.debug("VHUS decoded act %r: not a user act; dropped", token)
                current = None
            continue
        if current is None or current[0] == "general":
            logger.debug("VHUS decoded slot %r outside a domain act; dropped", token)
            continue
        domain, intent = current
        slot, has_source, source = token.partition("=")
        if not has_source:
            if intent == REQUEST and slot in USER_SLOT_TO_GOAL.get(domain, {}):
                emit([intent.capitalize(), domain.capitalize(), slot.capitalize(), "?"])
                filled = True
            else:
                logger.debug(
                    "VHUS decoded %r in %s-%s: not a requestable slot; dropped", token, domain, intent
                )
            continue
        value = _decode_value(domain, slot, source, goal)
        if value is None or intent == REQUEST:
            logger.debug("VHUS decoded %r in %s-%s: no value in the goal; dropped", token, domain, intent)
            continue
        emit([intent.capitalize(), domain.capitalize(), slot.capitalize(), value])
        filled = True
    close_current()
    return acts


def act_items(tokens: Sequence[str]) -> set[str]:
    """What the act-F1 scores: ``domain-intent-slot[=source]`` per slot, or the bare act when it has none."""
    items: set[str] = set()
    current: str | None = None
    bare = False
    for token in tokens:
        if token in STRUCTURE_TOKENS:
            continue
        if "-" in token and "=" not in token:
            if current is not None and bare:
                items.add(current)
            current, bare = token, True
        elif current is not None:
            items.add(f"{current}-{token}")
            bare = False
    if current is not None and bare:
        items.add(current)
    return items


# ---------------------------------------------------------------------------------------------------------------
# Vocabularies and the encoded corpus


class Vocab:
    """One of the three token vocabularies; unknown tokens map to ``<UNK>``."""

    def __init__(self, token_to_id: Mapping[str, int]):
        if any(token_to_id.get(token) != index for index, token in enumerate(SPECIAL_TOKENS)):
            raise ValueError(f"vocabulary must start with {SPECIAL_TOKENS} at ids 0..3")
        self.token_to_id = dict(token_to_id)
        self.id_to_token = [""] * (max(self.token_to_id.values()) + 1)
        for token, index in self.token_to_id.items():
            self.id_to_token[index] = token

    def __len__(self) -> int:
        return len(self.id_to_token)

    def encode(self, tokens: Iterable[str]) -> list[int]:
        return [self.token_to_id.get(token, UNK) for token in tokens]

    def decode(self, ids: Iterable[int]) -> list[str]:
        return [self.id_to_token[i] if 0 <= i < len(self.id_to_token) else SPECIAL_TOKENS[UNK] for i in ids]


@dataclass(frozen=True)
class Vocabs:
    goal: Vocab
    sys: Vocab
    usr: Vocab

    @classmethod
    def from_data(cls, data) -> Vocabs:
        raw = data.vhus_vocab
        return cls(goal=Vocab(raw["goal"]), sys=Vocab(raw["sys"]), usr=Vocab(raw["usr"]))

    def goal_slot_flags(self, goal_ids: Sequence[int]) -> list[float]:
        """1.0 for each goal token that names a slot (not a section name, bracket or special token)."""
        return [
            0.0
            if self.goal.id_to_token[i] in GOAL_SECTION_TOKENS
            or i < len(SPECIAL_TOKENS)
            or self.goal.id_to_token[i] in STRUCTURE_TOKENS
            else 1.0
            for i in goal_ids
        ]


@dataclass(frozen=True)
class EncodedDialogue:
    """One corpus dialogue as ids: the goal, the system turn *before* each user turn, each user turn.

    ``system[0]`` is empty (the user speaks first); ``user[t]`` is wrapped in ``<SOS> ... <EOS>``.
    """

    dialogue_id: str
    goal: list[int]
    system: list[list[int]]
    user: list[list[int]]


def dialogue_turns(dialogue: Mapping[str, Any]) -> list[tuple[ActGroups, ActGroups]] | None:
    """(user acts, system acts) per round; None when a round lacks annotation (ConvLab-2 skips the dialogue)."""
    log = dialogue.get("log", [])
    turns = []
    for index in range(0, len(log) - 1, 2):
        user = group_corpus_acts(log[index].get("dialog_act") or {})
        system = group_corpus_acts(log[index + 1].get("dialog_act") or {})
        if not user or not system:
            return None
        turns.append((user, system))
    return turns or None


def encode_corpus(corpus: Mapping[str, Mapping[str, Any]], vocabs: Vocabs) -> list[EncodedDialogue]:
    """Every fully annotated dialogue of a split, in the split's order."""
    encoded = []
    for dialogue_id, dialogue in corpus.items():
        turns = dialogue_turns(dialogue)
        if turns is None:
            continue
        goal = dialogue.get("goal", {})
        system: list[list[int]] = [[]] + [
            vocabs.sys.encode(system_tokens(sys_acts, goal)) for _, sys_acts in turns[:-1]
        ]
        user = [[SOS, *vocabs.usr.encode(user_tokens(usr_acts, goal)), EOS] for usr_acts, _ in turns]
        encoded.append(EncodedDialogue(dialogue_id, vocabs.goal.encode(goal_tokens(goal)), system, user))
    return encoded


def split_off(
    dialogues: Sequence[EncodedDialogue], fraction: float, rng: random.Random
) -> tuple[list[EncodedDialogue], list[EncodedDialogue]]:
    """(rest, held out): a seeded random ``fraction`` of the dialogues held out for early stopping."""
    held = set(rng.sample(range(len(dialogues)), int(len(dialogues) * fraction)))
    rest = [d for i, d in enumerate(dialogues) if i not in held]
    return rest, [d for i, d in enumerate(dialogues) if i in held]
