import json
import random
from collections import Counter

import pytest

from baselines import human
from envs.multiwoz.evaluator import Evaluator

CURRY_GARDEN = {"food": "indian", "pricerange": "expensive", "area": "centre"}  # restaurant record 2
TRAIN_ROUTE = {"day": "tuesday", "departure": "bishops stortford", "destination": "cambridge"}


def turn(dialog_act: dict, booked: dict | None = None, semi: dict | None = None) -> dict:
    """A corpus log entry; system turns carry a belief state (``metadata``), user turns an empty one."""
    if booked is None and semi is None:
        return {"text": "", "dialog_act": dialog_act, "metadata": {}}
    metadata = {
        domain: {"book": {"booked": entries}, "semi": dict(semi or {})}
        for domain, entries in (booked or {}).items()
    }
    return {"text": "", "dialog_act": dialog_act, "metadata": metadata}


def empty_domains(**goals) -> dict:
    return {
        domain: goals.get(domain, {})
        for domain in ("taxi", "police", "hospital", "hotel", "attraction", "train", "restaurant")
    } | {"message": [], "topic": {}}


# Booked restaurant, its requested phone informed: everything right.
RESTAURANT = {
    "goal": empty_domains(
        restaurant={
            "info": CURRY_GARDEN,
            "fail_info": {},
            "reqt": ["phone"],
            "book": {"people": "2", "day": "monday", "time": "12:00", "invalid": False},
            "fail_book": {},
        }
    ),
    "log": [
        turn({"Restaurant-Inform": [["Food", "indian"], ["Price", "expensive"], ["Area", "centre"]]}),
        turn({"Restaurant-Inform": [["Name", "curry garden"], ["Phone", "01223302330"]]}, booked={}),
        turn({"Booking-Inform": [["People", "2"], ["Day", "monday"], ["Time", "12:00"]]}),
        turn(
            {"Booking-Book": [["Ref", "ABCD1234"]]},
            booked={"restaurant": [{"name": "Curry Garden", "reference": "ABCD1234"}]},
        ),
        turn({"general-thank": [["none", "none"]]}),
        turn({"general-bye": [["none", "none"]]}, booked={}),
    ],
}
# One of two requested slots informed, plus an unrequested requestable slot (a false positive).
ATTRACTION = {
    "goal": empty_domains(
        attraction={"info": {"type": "museum"}, "fail_info": {}, "reqt": ["entrance fee", "postcode"]}
    ),
    "log": [
        turn({"Attraction-Inform": [["Type", "museum"]]}),
        turn({"Attraction-Inform": [["Post", "cb11ln"], ["Area", "centre"]]}, booked={}),
        turn({"general-bye": [["none", "none"]]}),
    ],
}
# TR4173 runs twice in the database; the belief state picks the Tuesday run (record 2365), which arrives in time.
TRAIN = {
    "goal": empty_domains(
        train={
            "info": {**TRAIN_ROUTE, "arriveBy": "12:45"},
            "fail_info": {},
            "book": {"people": "1", "invalid": True},
            "fail_book": {},
        }
    ),
    "log": [
        turn({"Train-Inform": [["Day", "tuesday"], ["Depart", "bishops stortford"], ["Dest", "cambridge"]]}),
        turn(
            {"Train-OfferBooked": [["Ref", "AAX97X46"], ["Arrive", "12:07"]]},
            booked={"train": [{"trainID": "TR4173", "reference": "AAX97X46"}]},
            semi=TRAIN_ROUTE,
        ),
        turn({"general-bye": [["none", "none"]]}),
        turn({"general-bye": [["none", "none"]]}, booked={}),
    ],
}


@pytest.fixture
def scorer(database):
    evaluator, resolver = Evaluator(database), human.ReferenceResolver(database)
    references = Counter()

    def score(dialogue):
        return human.score_dialogue(dialogue, evaluator, resolver, random.Random(0), references)

    score.references = references
    return score


def test_corpus_goal_keeps_info_reqt_and_booking_details():
    goal = human.corpus_goal(RESTAURANT["goal"])
    assert goal == {
        "restaurant": {
            "info": CURRY_GARDEN,
            "reqt": {"phone": "?"},
            "book": {"people": "2", "day": "monday", "time": "12:00"},
            "booked": "?",
        }
    }


def test_corpus_acts_are_intent_domain_slot_value_in_order():
    acts = human.corpus_acts(
        {"Hotel-Inform": [["Area", "east"], ["Stars", "4"]], "general-bye": [["none", "none"]]}
    )
    assert acts == [
        ["Inform", "Hotel", "Area", "east"],
        ["Inform", "Hotel", "Stars", "4"],
        ["bye", "general", "none", "none"],
    ]


def test_booked_restaurant_with_its_phone_is_a_success(scorer):
    metrics = scorer(RESTAURANT)
    assert (metrics.rounds, metrics.book_scores, metrics.inform_counts) == (3, (1.0,), (1, 0, 0))
    assert (metrics.success, metrics.paper_success, metrics.complete) == (1, 1, True)
    assert scorer.references == {"resolved": 1}


def test_missed_request_and_unrequested_inform(scorer):
    metrics = scorer(ATTRACTION)
    assert (metrics.rounds, metrics.book_rate, metrics.inform_counts) == (2, None, (1, 1, 1))
    assert (metrics.inform_precision, metrics.inform_recall, metrics.inform_f1) == (0.5, 0.5, 0.5)
    assert (metrics.success, metrics.paper_success) == (0, 0)


def test_train_reference_resolves_to_the_run_the_belief_state_names(scorer):
    metrics = scorer(TRAIN)
    assert (metrics.rounds, metrics.book_scores, metrics.inform_recall) == (2, (1.0,), None)
    assert (metrics.success, metrics.paper_success) == (1, 1)


def test_unknown_reference_books_nothing(scorer):
    dialogue = json.loads(json.dumps(RESTAURANT))
    dialogue["log"][3]["metadata"]["restaurant"]["book"]["booked"] = []
    metrics = scorer(dialogue)
    assert metrics.book_scores == (0,) and metrics.success == 0
    assert scorer.references == {"unresolved": 1}


def test_summary_over_the_three_hand_built_dialogues(database):
    corpus = {"R": RESTAURANT, "A": ATTRACTION, "T": TRAIN}
    result = human.score_corpus(corpus, database)
    summary = result.summary
    assert summary["paper_success"] == summary["success"] == pytest.approx(2 / 3)
    assert summary["paper_turns"] == pytest.approx(7 / 3) and summary["turns"] == pytest.approx(14 / 3)
    assert summary["paper_match"] == 1.0
    # pooled: tp 2, fp 1, fn 1
    assert summary["paper_inform_precision"] == summary["paper_inform_recall"] == pytest.approx(2 / 3)
    assert summary["inform_recall"] == pytest.approx(0.75)  # mean over the two dialogues that request
    assert [d["id"] for d in result.dialogues] == ["R", "A", "T"]


@pytest.mark.slow
def test_test_split_scores_without_error(tmp_path, capsys):
    out = tmp_path / "human.json"
    assert human.main(["--split", "test", "--out", str(out)]) == 0
    payload = json.loads(out.read_text())
    summary = payload["summary"]
    assert summary["dialogues"] == 1000 and len(payload["dialogues"]) == 1000
    assert 0.6 < summary["paper_success"] < 0.9 and 7 < summary["paper_turns"] < 8
    assert "success" in capsys.readouterr().out
