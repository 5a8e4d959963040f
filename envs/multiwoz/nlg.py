"""Template NLG: dialogue acts → an English turn, so that transcripts can be read by a person.

Follows ConvLab-2's manual template NLG: the same act ordering, the same special cases and the same template
draws (one ``choice`` per sentence, in the same order), so with the same ``random.Random`` state it writes the
same text. Where ConvLab-2 writes nothing (a ``Select`` without slots, a slot with no template and no wording,
a general act without templates) this module writes a short fallback instead of an empty string.
"""

from __future__ import annotations

import random
from collections.abc import Iterable, Mapping
from types import MappingProxyType
from typing import Any

from envs.acts import ActLike
from envs.multiwoz.data import MultiWozData

NLG_SEED = 0

# Act slot (lower case) -> its words in a sentence, where they differ from the slot name.
SLOT_WORDS = MappingProxyType(
    {
        "addr": "address",
        "car": "car type",
        "depart": "departure",
        "dest": "destination",
        "post": "postcode",
        "price": "price range",
        "ref": "reference number",
    }
)

DONT_CARE_VALUES = frozenset({"do nt care", "do n't care", "dontcare"})
AMENITIES = frozenset({"internet", "parking"})
USER_ANY_CHOICE = ("Please pick one for me. ", "Anyone would be ok. ", "Just select one for me. ")
SAME_PRICE_RANGE = (
    "it just needs to be {} .",
    "Oh , I really need something {} .",
    "I would prefer something that is {} .",
    "it needs to be {} .",
)
AMENITY_NOT_NEEDED = ("It does n't need to have {} .", "I do n't need free {} .")
NO_BOOKING_NEEDED = ("I do not need to book. ", "I 'm not looking to make a booking at the moment.")

# Fallbacks where ConvLab-2 would write nothing.
GENERAL_FALLBACK = MappingProxyType(
    {
        "bye": "Goodbye .",
        "greet": "Hello .",
        "reqmore": "Is there anything else I can help you with ?",
        "thank": "Thank you .",
        "welcome": "You are welcome .",
    }
)
SELECT_WITHOUT_SLOTS = "Which {domain} would you prefer ?"
UNKNOWN_SLOT = "The {slot} is {value} ."
UNKNOWN_ACT = "({domain} {intent})"

# ConvLab-2 puts, per domain: NoOffer, Inform-Name, other Informs, then everything else (it compared intents
# against a lower-case 'request', so Request acts fall into "everything else" too).
ACT_GROUP_RANK = {"nooffer": 0, "inform-name": 1, "inform-other": 2, "other": 3}


def _act_group(intent: str, slot: str) -> str:
    if intent == "NoOffer":
        return "nooffer"
    if intent == "Inform":
        return "inform-name" if slot == "Name" else "inform-other"
    return "other"


def order_acts(acts: Iterable[ActLike]) -> list[ActLike]:
    """ConvLab-2's speaking order: domains in reverse order of first mention, each sorted by
    ``ACT_GROUP_RANK`` (stable), general acts last."""
    by_domain: dict[str, list[ActLike]] = {}
    general: list[ActLike] = []
    for act in acts:
        if act[1] == "general":
            general.append(act)
        else:
            by_domain.setdefault(act[1], []).append(act)
    ordered: list[ActLike] = []
    for domain_acts in reversed(by_domain.values()):
        ordered.extend(sorted(domain_acts, key=lambda act: ACT_GROUP_RANK[_act_group(act[0], act[2])]))
    return ordered + general


def _sentence(text: str) -> str:
    """Capitalise, end with a full stop unless it ends with '?' or '.', and leave a trailing space."""
    text = text.strip()
    if text:
        text = text[0].upper() + text[1:]
        if text[-1] not in "?.":
            text += "."
    return text + " "


def _lower_keys(node: Any) -> Any:
    if isinstance(node, dict):
        return {key.lower(): _lower_keys(value) for key, value in node.items()}
    if isinstance(node, list):
        return [_lower_keys(value) for value in node]
    return node


class TemplateNLG:
    """Writes one side of a MultiWOZ dialogue (``'system'`` or ``'user'``) from its dialogue acts."""

    def __init__(self, data: MultiWozData, side: str = "system", rng: random.Random | None = None):
        self.side = side
        self.templates: Mapping[str, Mapping[str, list[str]]] = _lower_keys(data.templates(side))
        self.rng = rng if rng is not None else random.Random(NLG_SEED)

    def generate(self, acts: Iterable[ActLike]) -> str:
        """The turn's text; ``acts`` are ConvLab-2 lists ``[intent, domain, slot, value]``."""
        grouped: dict[str, list[tuple[str, Any]]] = {}
        for intent, domain, slot, value in order_acts(acts):
            grouped.setdefault(f"{domain.lower()}-{intent.lower()}", []).append((slot.lower(), value))
        return "".join(self._render(act_name, pairs) for act_name, pairs in grouped.items()).strip()

    def _render(self, act_name: str, pairs: list[tuple[str, Any]]) -> str:
        domain, _, intent = act_name.partition("-")
        templates = self.templates.get(act_name, {})
        if intent == "select":
            return self._render_select(domain, pairs)
        if intent == "request":
            return "".join(self._request_text(domain, templates, slot) for slot, _ in pairs)
        if domain == "general":
            if "none" in templates:
                return _sentence(self.rng.choice(templates["none"]))
            return _sentence(GENERAL_FALLBACK.get(intent, UNKNOWN_ACT.format(domain=domain, intent=intent)))
        return "".join(_sentence(self._slot_text(act_name, templates, slot, value)) for slot, value in pairs)

    def _request_text(self, domain: str, templates: Mapping[str, list[str]], slot: str) -> str:
        if slot in templates:
            return _sentence(self.rng.choice(templates[slot]))
        return f"What is the {slot} of {domain} ? "

    def _render_select(self, domain: str, pairs: list[tuple[str, Any]]) -> str:
        options: dict[str, list[str]] = {}
        for slot, value in pairs:
            if slot != "none":
                options.setdefault(slot, []).append(str(value))
        if not options:
            return _sentence(SELECT_WITHOUT_SLOTS.format(domain=domain))
        sentences = []
        for slot, values in options.items():
            choices = values[0] if len(values) == 1 else " , ".join(values[:-1]) + " or " + values[-1]
            sentences.append(f"Do you prefer {choices} {SLOT_WORDS.get(slot, slot)} ? ")
        return "".join(sentences)

    def _slot_text(self, act_name: str, templates: Mapping[str, list[str]], slot: str, value: Any) -> str:
        """One informing sentence; the special cases come first, as in ConvLab-2."""
        domain, _, intent = act_name.partition("-")
        value_text = str(value)
        lowered = value_text.lower()
        if value_text in DONT_CARE_VALUES:
            return f"I don't care about the {slot} of the {domain}"
        if self.side == "user" and intent == "inform" and slot == "choice" and lowered == "any":
            return self.rng.choice(USER_ANY_CHOICE)
        if slot == "price" and "same price range" in lowered:
            return self.rng.choice(SAME_PRICE_RANGE).format(value_text)
        if slot in AMENITIES and lowered == "no":
            return self.rng.choice(AMENITY_NOT_NEEDED).format(slot)
        if slot in templates:
            placeholder = f"#{act_name.upper()}-{slot.upper()}#"
            return self.rng.choice(templates[slot]).replace(placeholder, value_text)
        if slot == "notbook":
            return self.rng.choice(NO_BOOKING_NEEDED)
        if slot == "none":
            return UNKNOWN_ACT.format(domain=domain, intent=intent)
        return UNKNOWN_SLOT.format(slot=SLOT_WORDS.get(slot, slot), value=value_text)
