"""Template NLG: every vocabulary act renders, deterministic cases render exactly, randomness is injected."""

from __future__ import annotations

import random

import pytest

from envs.multiwoz.nlg import TemplateNLG, order_acts

SAMPLE_VALUES = {
    "Addr": "28 mill road", "Area": "centre", "Arrive": "10:30", "Car": "black bmw", "Day": "monday",
    "Depart": "cambridge", "Dest": "london kings cross", "Food": "italian", "Id": "TR1234", "Internet": "yes",
    "Leave": "08:15", "Name": "acorn guest house", "Parking": "yes", "Phone": "01223358966", "Post": "cb21tt",
    "Price": "cheap", "Ref": "ABC123", "Ticket": "10.10 pounds", "Time": "19:00", "Type": "guesthouse",
}  # fmt: skip


def lexicalised(vocab_entry: str) -> list[str]:
    """``Hotel-Inform-Area-1`` → ``["Inform", "Hotel", "Area", "centre"]`` (requests keep ``?``)."""
    domain, intent, slot, value = vocab_entry.split("-")
    if value not in ("?", "none"):
        value = SAMPLE_VALUES.get(slot, "3")
    return [intent, domain, slot, value]


@pytest.mark.parametrize("side", ["system", "user"])
def test_every_vocabulary_act_renders(mwdata, side):
    vocab = mwdata.sys_act_vocab if side == "system" else mwdata.usr_act_vocab
    nlg = TemplateNLG(mwdata, side)
    for entry in vocab:
        text = nlg.generate([lexicalised(entry)])
        assert text and text == text.strip(), entry
        assert "#" not in text, f"{entry}: unfilled placeholder in {text!r}"
    turn = [lexicalised(entry) for entry in vocab]
    assert len(nlg.generate(turn)) > 1000


@pytest.mark.parametrize(
    ("side", "acts", "expected"),
    [
        ("system", [["Inform", "Hotel", "Type", "guesthouse"]], "It is a guesthouse ."),
        ("system", [["Request", "Hospital", "Department", "?"]], "What is the department of hospital ?"),
        (
            "system",
            [["Select", "Hotel", "Price", "cheap"], ["Select", "Hotel", "Price", "moderate"],
             ["Select", "Hotel", "Price", "expensive"]],
            "Do you prefer cheap , moderate or expensive price range ?",
        ),
        ("system", [["Select", "Hotel", "none", "none"]], "Which hotel would you prefer ?"),
        ("system", [["Inform", "Police", "Name", "Parkside"]], "The name is Parkside ."),
        ("user", [["Inform", "Hotel", "Area", "dontcare"]], "I don't care about the area of the hotel."),
        ("user", [["greet", "general", "none", "none"]], "Hello !."),
        ("system", [["thank", "general", "none", "none"]], "Thank you ."),
    ],
)  # fmt: skip
def test_exact_renderings(mwdata, side, acts, expected):
    assert TemplateNLG(mwdata, side).generate(acts) == expected


def test_one_template_draw_per_sentence_from_the_injected_rng(mwdata):
    templates = mwdata.templates("system")
    byes = templates["general-bye"]["none"]
    areas = templates["Hotel-Inform"]["Area"]
    for seed in range(10):
        # the general act is listed first but spoken, and drawn for, last
        draws = random.Random(seed)
        area = draws.choice(areas).replace("#HOTEL-INFORM-AREA#", "north").strip()
        bye = draws.choice(byes).strip()
        text = TemplateNLG(mwdata, "system", rng=random.Random(seed)).generate(
            [["bye", "general", "none", "none"], ["Inform", "Hotel", "Area", "north"]]
        )
        assert text.startswith(area[0].upper() + area[1:])
        assert text.endswith(bye if bye[-1] in "?." else bye + ".")


def test_randomness_is_injected_not_global(mwdata):
    acts = [["Inform", "Hotel", "Name", "acorn guest house"], ["reqmore", "general", "none", "none"]]
    random.seed(0)
    global_state = random.getstate()
    texts = {TemplateNLG(mwdata, "system", rng=random.Random(seed)).generate(acts) for seed in range(20)}
    assert random.getstate() == global_state
    assert len(texts) > 1
    assert TemplateNLG(mwdata, "system").generate(acts) == TemplateNLG(mwdata, "system").generate(acts)


def test_speaking_order():
    acts = [
        ["bye", "general", "none", "none"],
        ["Request", "Hotel", "Area", "?"],
        ["Inform", "Hotel", "Area", "north"],
        ["Inform", "Hotel", "Name", "acorn guest house"],
        ["NoOffer", "Hotel", "Stars", "5"],
        ["Inform", "Train", "Id", "TR1234"],
    ]
    assert order_acts(acts) == [acts[5], acts[4], acts[3], acts[2], acts[1], acts[0]]
