import random

import numpy as np
import pytest

from envs.multiwoz.parity.system import compare_vector
from envs.multiwoz.parity.traces import read_traces
from envs.multiwoz.vector import (
    ACTION_DIM,
    BELIEF_OFFSET,
    DB_OFFSET,
    STATE_DIM,
    TERMINATED_INDEX,
    current_domain,
)


@pytest.fixture(scope="module")
def empty_belief(trace_paths):
    first = next(read_traces(trace_paths[0], limit=1))
    belief = {
        domain: {"book": dict(parts["book"]), "semi": dict(parts["semi"])}
        for domain, parts in first["turns"][0]["belief_state"].items()
    }
    for parts in belief.values():
        parts["semi"] = dict.fromkeys(parts["semi"], "")
        parts["book"] = {slot: ([] if slot == "booked" else "") for slot in parts["book"]}
    return belief


@pytest.mark.parametrize("name", ["rule_policy_seed0", "random_policy_seed0"])
def test_traces_replay_exactly(trace_paths, vectoriser, name):
    path = next(p for p in trace_paths if p.name.startswith(name))
    matched = total = 0
    for dialogue in read_traces(path):
        ok, n, first = compare_vector(dialogue, vectoriser)
        assert first is None, first
        matched, total = matched + ok, total + n
    assert matched == total > 0


def test_state_vector_shape_and_fixed_parts(vectoriser, empty_belief):
    vec = vectoriser.state_vector(empty_belief, [], [], terminated=True)
    assert vec.shape == (STATE_DIM,) and vec.dtype == np.float32
    # nothing filled: every domain matches its whole table (bucket >= 5), terminated set
    assert np.flatnonzero(vec).tolist() == [
        DB_OFFSET + 5,
        DB_OFFSET + 11,
        DB_OFFSET + 17,
        DB_OFFSET + 23,
        TERMINATED_INDEX,
    ]


def test_belief_slot_and_repeated_acts(vectoriser, empty_belief):
    belief = {
        **empty_belief,
        "hotel": {**empty_belief["hotel"], "semi": {**empty_belief["hotel"]["semi"], "area": "north"}},
    }
    nz = vectoriser.state_indices(belief, [["Inform", "Hotel", "Area", "north"]], [])
    assert BELIEF_OFFSET + 13 in nz  # hotel-area is the 14th belief slot
    acts = [
        ["Inform", "Hotel", "Name", "a"],
        ["Inform", "Hotel", "Name", "b"],
        ["Inform", "Hotel", "Nope", "x"],
    ]
    names = [vectoriser.sys_vocab[i] for i in vectoriser.action_indices(acts)]
    assert names == ["Hotel-Inform-Name-1", "Hotel-Inform-Name-2"]


def test_vector_and_indices_lexicalise_alike(vectoriser, empty_belief):
    indices = [vectoriser.sys_vocab.index(a) for a in ("Hotel-Inform-Choice-1", "Hotel-Recommend-Name-1")]
    vec = np.zeros(ACTION_DIM, dtype=np.float32)
    vec[indices] = 1
    by_vec = vectoriser.action_to_acts(vec, empty_belief, random.Random(0), "Hotel")
    by_idx = vectoriser.action_to_acts(indices, empty_belief, random.Random(0), "Hotel")
    assert by_vec == by_idx
    assert by_vec[0] == ["Inform", "Hotel", "Choice", str(len(vectoriser.entities("hotel", empty_belief)))]
    assert vectoriser.acts_to_action(by_vec).nonzero()[0].tolist() == sorted(indices)


def test_booking_uses_current_domain(vectoriser, empty_belief):
    index = vectoriser.sys_vocab.index("Booking-Book-Ref-1")
    first = vectoriser.entities("restaurant", empty_belief)[0]
    assert vectoriser.action_to_acts([index], empty_belief, random.Random(0), "Restaurant") == [
        ["Book", "Booking", "Ref", first["Ref"]]
    ]
    # no current domain: ConvLab-2 leaves the vocabulary value
    assert vectoriser.action_to_acts([index], empty_belief, random.Random(0), None) == [
        ["Book", "Booking", "Ref", "1"]
    ]


def test_current_domain_tracks_database_domains():
    assert (
        current_domain([["Inform", "Hotel", "Area", "north"], ["Request", "Taxi", "Car", "?"]], None)
        == "Hotel"
    )
    assert current_domain([["bye", "general", "none", "none"]], "Train") == "Train"
