import random

import pytest

from envs.multiwoz.evaluator import (
    DialogueMetrics,
    Evaluator,
    precision_recall_f1,
    succeeded,
    summarize,
    user_goal_complete,
)
from envs.multiwoz.parity.system import compare_eval
from envs.multiwoz.parity.traces import read_traces


@pytest.fixture
def evaluator(database):
    return Evaluator(database)


def test_evaluator_reproduces_every_traced_reward_and_final_score(evaluator, trace_paths):
    for path in trace_paths:
        matched = total = 0
        first = None
        for dialogue in read_traces(path):
            ok, n, mismatch = compare_eval(dialogue, evaluator)
            matched, total = matched + ok, total + n
            first = first or mismatch
        assert total > 0
        assert matched == total, f"{path.name}: {matched}/{total} checks; first mismatch: {first}"


# -- hand-built dialogues ----------------------------------------------------------------------------------------


@pytest.fixture
def restaurant(database):
    return next(
        r for r in database.records("restaurant") if r["pricerange"] == "cheap" and r["area"] == "north"
    )


def restaurant_goal(record, *, book=True, reqt=("phone",)):
    goal = {"info": {"food": record["food"], "pricerange": record["pricerange"], "area": record["area"]}}
    if reqt:
        goal["reqt"] = dict.fromkeys(reqt, "?")
    if book:
        goal["book"] = {"people": "2", "day": "monday", "time": "12:00"}
        goal["booked"] = "?"
    return {"restaurant": goal}


def play(evaluator, goal, rounds):
    """Feed (system acts, user acts) rounds; the goal dict is updated in place by the caller beforehand."""
    evaluator.reset(goal)
    for system_acts, user_acts in rounds:
        evaluator.add_system_acts(system_acts)
        evaluator.add_user_acts(user_acts)
    return evaluator.dialogue_metrics(len(rounds), terminated=True, rng=random.Random(0))


def test_booked_and_informed_dialogue_succeeds(evaluator, restaurant):
    goal = restaurant_goal(restaurant)
    goal["restaurant"]["reqt"]["phone"] = restaurant["phone"]
    goal["restaurant"]["booked"] = restaurant["Ref"]
    metrics = play(
        evaluator,
        goal,
        [
            ([], [["Inform", "Restaurant", "Food", restaurant["food"]]]),
            (
                [
                    ["Inform", "Restaurant", "Phone", restaurant["phone"]],
                    ["Book", "Booking", "Ref", restaurant["Ref"]],
                ],
                [["bye", "general", "none", "none"]],
            ),
        ],
    )
    assert metrics.book_scores == (1.0,) and metrics.book_rate == 1.0
    assert metrics.inform_counts == (1, 0, 0)
    assert metrics.success == metrics.paper_success == 1
    assert metrics.complete and metrics.rounds == 2 and metrics.turns == 4


def test_none_rules(evaluator, restaurant):
    """A side with nothing to score counts as met; a goal with neither bookings nor requests never succeeds."""
    informs = [([["Inform", "Restaurant", "Phone", restaurant["phone"]]], [])]
    only_requests = play(evaluator, restaurant_goal(restaurant, book=False), informs)
    assert only_requests.book_rate is None and only_requests.inform_recall == 1
    assert only_requests.paper_success == 1

    booking = [
        (
            [
                ["Inform", "Restaurant", "Name", restaurant["name"]],
                ["Book", "Booking", "Ref", restaurant["Ref"]],
            ],
            [],
        )
    ]
    only_booking = play(evaluator, restaurant_goal(restaurant, reqt=()), booking)
    assert only_booking.inform_recall is None and only_booking.book_rate == 1
    assert only_booking.paper_success == 1

    neither = play(evaluator, restaurant_goal(restaurant, book=False, reqt=()), informs)
    assert neither.book_rate is None and neither.inform_recall is None
    assert neither.paper_success == neither.success == 0
    assert not succeeded(None, None) and succeeded(None, 1.0) and not succeeded(1.0, 0.5)


def test_wrong_booking_fails_match(evaluator, database, restaurant):
    other = next(r for r in database.records("restaurant") if r["area"] != restaurant["area"])
    goal = restaurant_goal(restaurant, reqt=())
    metrics = play(
        evaluator,
        goal,
        [([["Inform", "Restaurant", "Area", other["area"]], ["Book", "Booking", "Ref", other["Ref"]]], [])],
    )
    assert metrics.book_rate < 1
    assert metrics.paper_success == metrics.success == 0


def test_paper_success_skips_the_final_database_check(evaluator, restaurant):
    goal = restaurant_goal(restaurant, book=False)
    goal["restaurant"]["reqt"]["phone"] = "no such phone number anywhere"  # what the user wrote down
    metrics = play(evaluator, goal, [([["Inform", "Restaurant", "Phone", restaurant["phone"]]], [])])
    assert metrics.inform_recall == 1 and metrics.final_goal_analyze == 0
    assert metrics.paper_success == 1 and metrics.success == 0


def test_inform_false_positives(evaluator, restaurant):
    goal = restaurant_goal(restaurant, book=False)
    evaluator.reset(goal)
    evaluator.add_system_acts(
        [
            ["Inform", "Restaurant", "Phone", restaurant["phone"]],  # requested: true positive
            ["Inform", "Restaurant", "Area", "somewhere"],  # implausible area: false positive
            [
                "Inform",
                "Restaurant",
                "Addr",
                restaurant["address"],
            ],  # unrequested, but not "requestable": ignored
            ["Inform", "Restaurant", "Area", "dontcare"],  # no value: ignored
        ]
    )
    assert evaluator.inform_counts() == (1, 1, 0)
    assert evaluator.inform_f1() == (0.5, 1.0, 2 / 3)


def test_reward_levels(evaluator, database, restaurant):
    hotel = database.records("hotel")[0]
    goal = restaurant_goal(restaurant, book=False)
    goal["hotel"] = {"info": {"area": hotel["area"]}, "reqt": {"phone": "?"}}
    evaluator.reset(goal)
    evaluator.add_user_acts([["Inform", "Restaurant", "Food", restaurant["food"]]])
    assert evaluator.reward() == -1
    evaluator.add_system_acts([["Inform", "Restaurant", "Phone", restaurant["phone"]]])
    goal["restaurant"]["reqt"]["phone"] = restaurant["phone"]
    assert evaluator.cur_domain == "restaurant" and evaluator.reward() == 5  # the current domain is done
    evaluator.add_system_acts([["Inform", "Hotel", "Phone", hotel["phone"]]])
    goal["hotel"]["reqt"]["phone"] = hotel["phone"]
    assert evaluator.reward() == 40


def test_taxi_goal_needs_an_rng(evaluator):
    evaluator.reset({"taxi": {"info": {"leaveAt": "10:00"}, "reqt": {"car type": "?"}}})
    with pytest.raises(ValueError, match="rng"):
        evaluator.reward()
    rng = random.Random(7)
    assert evaluator.reward(rng) == -1
    assert rng.getstate() != random.Random(7).getstate()  # the taxi look-up drew, as in ConvLab-2


def test_summary_pools_inform_counts_and_match(evaluator):
    def dialogue(counts, scores, success):
        precision, recall, f1 = precision_recall_f1(*counts)
        return DialogueMetrics(
            success,
            success,
            bool(success),
            sum(scores) / len(scores) if scores else None,
            tuple(scores),
            precision,
            recall,
            f1,
            counts,
            1.0,
            4,
            True,
            success,
        )

    first, second = dialogue((1, 0, 0), [1.0, 0.0], 0), dialogue((1, 3, 1), [], 0)
    summary = summarize([first, second])
    assert summary["inform_precision"] == pytest.approx((1.0 + 0.25) / 2)
    assert summary["paper_inform_precision"] == pytest.approx(2 / 5)
    assert summary["paper_inform_recall"] == pytest.approx(2 / 3)
    assert summary["paper_inform_f1"] == pytest.approx(2 * (2 / 5) * (2 / 3) / (2 / 5 + 2 / 3))
    assert summary["book_rate"] == 0.5 and summary["paper_match"] == 0.5
    assert summary["turns"] == 8 and summary["paper_turns"] == 4


def test_summary_matches_the_trace_readme(evaluator, trace_paths):
    from envs.multiwoz.parity.traces import rng_at

    path = next(p for p in trace_paths if p.name.startswith("rule_policy"))
    metrics = []
    for dialogue in read_traces(path):
        evaluator.reset(dialogue["goal_final"])
        for turn in dialogue["turns"]:
            evaluator.add_system_acts(turn["sys_in"])
            evaluator.add_user_acts(turn["user"])
        rng = rng_at(dialogue["seed"], dialogue["rng_end"])
        metrics.append(
            evaluator.dialogue_metrics(len(dialogue["turns"]), dialogue["turns"][-1]["terminated"], rng)
        )
    summary = summarize(metrics)
    expected = {
        "success": 0.965,
        "inform_precision": 0.889,
        "inform_recall": 0.984,
        "inform_f1": 0.918,
        "book_rate": 0.981,
        "rounds": 5.29,
    }
    assert {key: round(summary[key], 3) for key in expected} == expected


def test_user_goal_complete():
    assert user_goal_complete({"hotel": {"reqt": {"phone": "0123"}, "booked": "00000001"}})
    assert not user_goal_complete({"hotel": {"reqt": {"phone": "?"}}})
    assert not user_goal_complete({"hotel": {"reqt": {}, "booked": "no"}})
