"""The agenda user's reaction to each kind of system act, on small hand-built goals."""

import copy
import random

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from envs.multiwoz.agenda import MAX_TURN, UserSimulator, ValueNormalizer
from envs.multiwoz.parity.traces import read_traces

BYE = [["bye", "general", "none", "none"]]

RESTAURANT = {
    "restaurant": {
        "info": {"food": "chinese"},
        "reqt": ["phone"],
        "book": {"people": "2", "day": "monday", "time": "12:00"},
    },
    "domain_ordering": ["restaurant"],
}
ATTRACTION = {
    "attraction": {"info": {"type": "museum"}, "reqt": ["phone"]},
    "domain_ordering": ["attraction"],
}
FAILING_SEARCH = {
    "restaurant": {
        "info": {"food": "chinese", "area": "centre"},
        "fail_info": {"food": "korean", "area": "centre"},
        "reqt": ["phone"],
    },
    "domain_ordering": ["restaurant"],
}
FAILING_BOOKING = {
    "hotel": {
        "info": {"name": "acorn guest house"},
        "book": {"people": "2", "day": "monday", "stay": "3"},
        "fail_book": {"people": "2", "day": "tuesday", "stay": "3"},
    },
    "domain_ordering": ["hotel"],
}
TAXI_TRIP = {
    "restaurant": {"info": {"name": "pizza hut city centre"}, "reqt": ["phone"]},
    "hotel": {"info": {"area": "north"}, "reqt": ["postcode"]},
    "taxi": {"info": {"leaveAt": "10:00"}, "reqt": ["car type"]},
    "domain_ordering": ["restaurant", "hotel", "taxi"],
}
TRAIN = {
    "train": {
        "info": {"arriveBy": "10:00", "day": "monday", "departure": "cambridge", "destination": "ely"},
        "reqt": ["duration"],
    },
    "domain_ordering": ["train"],
}


class FixedDraw(random.Random):
    """``random()`` always returns ``value``; integer draws stay those of the seeded twister."""

    def __init__(self, value: float):
        super().__init__(0)
        self.value = value

    def random(self) -> float:
        return self.value


@pytest.fixture(scope="module")
def make_user(mwdata):
    def make(goal, seed=0, opened=True, rng=None):
        user = UserSimulator.from_data(mwdata)
        user.start(goal, rng or random.Random(seed))
        if opened:
            user.respond([])
        return user

    return make


def test_start_builds_goal_and_agenda_without_touching_the_input(make_user):
    goal = copy.deepcopy(RESTAURANT)
    user = make_user(goal, opened=False)
    assert goal == RESTAURANT
    assert user.domain_goals == {
        "restaurant": {
            "info": {"food": "chinese"},
            "reqt": {"phone": "?"},
            "book": {"people": "2", "day": "monday", "time": "12:00"},
            "booked": "?",
        }
    }
    assert user.agenda_items() == [
        ["general-bye", "none", "none"],
        ["restaurant-inform", "food", "chinese"],
        ["restaurant-inform", "none", "none"],
    ]
    assert not user.terminated and user.reward == -1.0
    assert user.respond([]) == [
        ["Inform", "Restaurant", "none", "none"],
        ["Inform", "Restaurant", "Food", "chinese"],
    ]


def test_inform_answers_a_request_then_the_user_gives_booking_details(make_user):
    user = make_user(RESTAURANT)
    acts = user.respond([["Inform", "Restaurant", "Phone", "01223 000000"]])
    assert user.domain_goals["restaurant"]["reqt"] == {"phone": "01223 000000"}
    assert acts == [
        ["Inform", "Restaurant", "Time", "12:00"],
        ["Inform", "Restaurant", "Day", "monday"],
        ["Inform", "Restaurant", "People", "2"],
    ]


def test_inform_of_a_not_sure_value_is_quoted_so_it_counts_as_answered(make_user):
    user = make_user(ATTRACTION)
    user.respond([["Inform", "Attraction", "Phone", "none"]])
    assert user.domain_goals["attraction"]["reqt"] == {"phone": '"none"'}
    assert user.goal_complete and user.terminated


def test_inform_breaking_a_constraint_is_corrected(make_user):
    user = make_user(RESTAURANT)
    assert user.respond([["Inform", "Restaurant", "Food", "italian"]]) == [
        ["Inform", "Restaurant", "Food", "chinese"]
    ]


@pytest.mark.parametrize(
    ("offered", "restated"), [("09:30", False), ("10:00", False), ("10:30", True), ("soon", False)]
)
def test_arrival_times_compare_as_no_later_than(make_user, offered, restated):
    user = make_user(TRAIN)
    acts = user.respond([["Inform", "Train", "Arrive", offered]])
    assert (["Inform", "Train", "Arrive", "10:00"] in acts) == restated


def test_request_gets_the_goal_value_or_dontcare(make_user):
    user = make_user(RESTAURANT)
    assert user.respond([["Request", "Restaurant", "Food", "?"]]) == [
        ["Inform", "Restaurant", "Food", "chinese"]
    ]
    assert user.respond([["Request", "Restaurant", "Area", "?"]]) == [
        ["Inform", "Restaurant", "Area", "dontcare"]
    ]


def test_request_for_a_slot_the_user_wants_to_know_is_not_answered(make_user):
    user = make_user(RESTAURANT)
    assert user.respond([["Request", "Restaurant", "Phone", "?"]]) == [
        ["Request", "Restaurant", "Phone", "?"]
    ]


def test_booking_request_uses_the_current_domain(make_user):
    booking_only = {
        "restaurant": {key: RESTAURANT["restaurant"][key] for key in ("info", "book")},
        "domain_ordering": ["restaurant"],
    }
    user = make_user(booking_only)
    assert user.respond([["Request", "Booking", "People", "?"]]) == [["Inform", "Restaurant", "People", "2"]]


def test_an_open_request_goes_before_booking_details(make_user):
    user = make_user(RESTAURANT)
    assert user.respond([["Request", "Booking", "People", "?"]]) == [["Request", "Restaurant", "Phone", "?"]]
    assert user.agenda_items()[-1] == ["restaurant-inform", "people", "2"]


def test_taxi_request_names_the_places_of_the_goal(make_user):
    user = make_user(TAXI_TRIP, opened=False)
    acts = user.respond([["Request", "Taxi", "Dest", "?"], ["Request", "Taxi", "Depart", "?"]])
    assert acts == [
        ["Inform", "Taxi", "Depart", "pizza hut city centre"],
        ["Inform", "Taxi", "Dest", "the hotel"],
    ]


def test_book_completes_the_booking_and_the_user_says_bye(make_user):
    user = make_user(RESTAURANT)
    user.respond([["Inform", "Restaurant", "Phone", "01223 000000"]])
    assert user.respond([["Book", "Booking", "Ref", "ABCD1234"]]) == BYE
    assert user.domain_goals["restaurant"]["booked"] == "yes"
    assert user.terminated and user.goal_complete and user.reward == 80.0


def test_book_with_wrong_details_is_not_accepted(make_user):
    user = make_user(RESTAURANT)
    user.respond([["Inform", "Restaurant", "Phone", "01223 000000"]])
    assert user.respond([["Book", "Booking", "People", "3"]]) == [["Inform", "Restaurant", "People", "2"]]
    assert user.domain_goals["restaurant"]["booked"] == "?"


def test_offerbooked_books_the_named_domain(make_user):
    goal = {
        "train": {
            "info": {"day": "monday", "departure": "cambridge", "destination": "ely", "leaveAt": "09:00"},
            "book": {"people": "3"},
        },
        "domain_ordering": ["train"],
    }
    user = make_user(goal)
    assert user.respond([["OfferBooked", "Train", "Ref", "ABCD1234"]]) == BYE
    assert user.domain_goals["train"]["booked"] == "yes" and user.reward == 80.0


def test_booking_offer_for_a_domain_without_booking_is_declined(make_user):
    user = make_user(ATTRACTION)
    assert user.respond([["Book", "Booking", "none", "none"]]) == [
        ["Inform", "Attraction", "NotBook", "none"]
    ]


def test_recommend_with_a_name_drops_the_pending_choice_question(make_user):
    with_name = make_user(RESTAURANT).respond(
        [["Inform", "Restaurant", "Choice", "5"], ["Recommend", "Restaurant", "Name", "golden house"]]
    )
    without_name = make_user(RESTAURANT).respond([["Inform", "Restaurant", "Choice", "5"]])
    assert with_name == [["Request", "Restaurant", "Phone", "?"]]
    assert without_name == [["Inform", "Restaurant", "Choice", "any"]]


def test_select_answers_with_the_goal_value(make_user):
    user = make_user(RESTAURANT)
    acts = user.respond(
        [["Select", "Restaurant", "Food", "chinese"], ["Select", "Restaurant", "Food", "thai"]]
    )
    assert acts == [["Inform", "Restaurant", "Food", "chinese"]]


def test_select_outside_the_goal_picks_one_offer_at_random(make_user):
    picked = set()
    for seed in range(20):
        user = make_user(RESTAURANT, seed=seed)
        (act,) = user.respond(
            [["Select", "Restaurant", "Area", "north"], ["Select", "Restaurant", "Area", "south"]]
        )
        picked.add(act[3])
    assert picked == {"north", "south"}


def test_select_among_many_asks_for_any(make_user):
    user = make_user(RESTAURANT)
    assert ["Inform", "Restaurant", "Choice", "any"] in user.respond(
        [["Select", "Restaurant", "Choice", "3"]]
    )


@pytest.mark.parametrize(
    "no_offer",
    [
        [["NoOffer", "Restaurant", "none", "none"]],
        [["Inform", "Restaurant", "Choice", "0"]],
        [["Inform", "Restaurant", "Choice", "zero"]],
    ],
)
def test_no_offer_switches_from_the_failing_constraints(make_user, no_offer):
    user = make_user(FAILING_SEARCH)
    assert user.respond(no_offer) == [["Inform", "Restaurant", "Food", "chinese"]]
    goal = user.domain_goals["restaurant"]
    assert "fail_info" not in goal and goal["fail_info_fail"] == {"food": "korean", "area": "centre"}


def test_no_offer_without_alternatives_ends_the_session(make_user):
    user = make_user(RESTAURANT)
    assert user.respond([["NoOffer", "Restaurant", "none", "none"]]) == BYE
    assert user.terminated and not user.goal_complete and user.reward == -40.0


def test_no_book_switches_from_the_failing_booking(make_user):
    user = make_user(FAILING_BOOKING)
    details = user.respond([])
    assert ["Inform", "Hotel", "Day", "tuesday"] in details
    assert user.respond([["NoBook", "Booking", "none", "none"]]) == [["Inform", "Hotel", "Day", "monday"]]
    assert "fail_book_fail" in user.domain_goals["hotel"]


def test_no_book_without_alternatives_ends_the_session(make_user):
    user = make_user(RESTAURANT)
    assert user.respond([["NoBook", "Booking", "none", "none"]]) == BYE
    assert user.reward == -40.0


@pytest.mark.parametrize("intent", ["reqmore", "welcome", "greet", "bye", "thank"])
def test_general_acts_change_nothing(make_user, intent):
    plain = make_user(TAXI_TRIP, opened=False)
    general = make_user(TAXI_TRIP, opened=False)
    assert general.respond([[intent, "general", "none", "none"]]) == plain.respond([])
    assert general.domain_goals == plain.domain_goals and general.agenda_items() == plain.agenda_items()


@pytest.mark.parametrize(
    "act",
    [
        ["Inform", "Spaceship", "Name", "x"],
        ["Inform", "Restaurant", "Colour", "red"],
        ["Dance", "Restaurant", "Food", "thai"],
        ["Inform", "Booking", "Time", "10:00"],
    ],
)
def test_unknown_domain_slot_or_intent_is_ignored(make_user, act):
    goal = FAILING_BOOKING if act[1] == "Booking" else RESTAURANT
    plain, other = make_user(goal), make_user(goal)
    assert other.respond([act]) == plain.respond([])
    assert other.domain_goals == plain.domain_goals


def test_repeated_value_may_become_a_back_reference(make_user):
    goal = {
        "attraction": {"info": {"area": "centre"}, "reqt": ["phone"]},
        "restaurant": {"info": {"area": "centre"}, "reqt": ["phone"]},
        "domain_ordering": ["attraction", "restaurant"],
    }
    always = make_user(goal, opened=False, rng=FixedDraw(0.0))
    assert ["restaurant-inform", "area", "same area as the attraction"] in always.agenda_items()
    never = make_user(goal, opened=False, rng=FixedDraw(0.99))
    assert ["restaurant-inform", "area", "centre"] in never.agenda_items()


def test_user_gives_up_after_twenty_rounds(make_user):
    user = make_user(RESTAURANT, opened=False)
    replies = []
    while not user.terminated:
        replies.append(user.respond([["reqmore", "general", "none", "none"]]))
    assert len(replies) == MAX_TURN // 2 + 1
    assert replies[-1] == BYE and replies[-2] == [["Request", "Restaurant", "Phone", "?"]]
    assert user.reward == -40.0


@pytest.mark.parametrize(
    "act",
    [
        ["Inform", "Restaurant", "Food"],
        ["Inform", "Restaurant", "Food", 3],
        "abcd",
        ("Inform", "Restaurant", None, "x"),
        None,
    ],
)
def test_malformed_act_raises_value_error_naming_it(make_user, act):
    user = make_user(RESTAURANT)
    before = user.agenda_items()
    with pytest.raises(ValueError, match="system act"):
        user.respond([["Inform", "Restaurant", "Phone", "1"], act])
    assert user.agenda_items() == before


def test_respond_outside_a_session_raises(mwdata, make_user):
    with pytest.raises(RuntimeError, match="start"):
        UserSimulator.from_data(mwdata).respond([])
    user = make_user(RESTAURANT)
    user.respond([["NoOffer", "Restaurant", "none", "none"]])
    with pytest.raises(RuntimeError, match="ended"):
        user.respond([])


def test_value_normalizer(mwdata):
    normalize = ValueNormalizer(mwdata.value_set)
    assert normalize("restaurant", "inform", "food", "chinese") == "chinese"
    assert normalize("restaurant", "inform", "food", "Chinese") == "chinese"
    assert normalize("restaurant", "request", "food", "anything") == "?"
    assert normalize("hotel", "inform", "parking", "none") == "yes"
    assert normalize("booking", "book", "ref", "XYZ") == "XYZ"
    assert normalize("restaurant", "inform", "name", "something unheard of 12") == "something unheard of 12"


# ---------------------------------------------------------------------------------------------------------------
# Property: arbitrary system acts never break the user, and it always ends within its cap


@pytest.fixture(scope="module")
def trace_goals(trace_paths):
    return [dialogue["goal_raw"] for dialogue in read_traces(trace_paths[0], limit=40)]


@pytest.fixture(scope="module")
def sys_vocab(mwdata):
    return [name.split("-") for name in mwdata.sys_act_vocab]


@pytest.mark.slow
@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(data=st.data())
def test_random_system_acts_never_crash_and_the_dialogue_ends(mwdata, trace_goals, sys_vocab, data):
    user = UserSimulator.from_data(mwdata)
    goal = data.draw(st.sampled_from(trace_goals), label="goal")
    user.start(goal, random.Random(data.draw(st.integers(0, 2**32), label="seed")))
    value = st.one_of(
        st.text(max_size=12),
        st.sampled_from(
            ["none", "0", "1", "3", "zero", "?", "dontcare", "12:30", "monday", "centre", "cheap", "2"]
        ),
    )
    act = st.tuples(st.sampled_from(sys_vocab), value).map(
        lambda pair: [pair[0][1], pair[0][0], pair[0][2], pair[1]]
    )
    rounds = 0
    sys_acts: list = []
    while not user.terminated:
        reply = user.respond(sys_acts)
        rounds += 1
        assert reply and all(len(a) == 4 and all(isinstance(part, str) for part in a) for a in reply)
        sys_acts = data.draw(st.lists(act, max_size=4), label="system acts")
    assert rounds <= MAX_TURN // 2 + 1
    assert user.reward in (80.0, -40.0)


@pytest.mark.parametrize("goal", [{"restaurant": {"info": {}}}, {"domain_ordering": ["hotel"]}])
def test_goal_without_a_consistent_domain_ordering_is_rejected(mwdata, goal):
    with pytest.raises(ValueError, match="domain_ordering"):
        UserSimulator.from_data(mwdata).start(goal, random.Random(0))
