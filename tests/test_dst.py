from envs.multiwoz.dst import DialogueState, RuleDST, ValueNormalizer, default_belief_state
from envs.multiwoz.parity.system import compare_dst
from envs.multiwoz.parity.traces import read_traces


def test_dst_reproduces_every_traced_turn(mwdata, trace_paths):
    tracker = RuleDST.from_data(mwdata)
    for path in trace_paths:
        matched = total = 0
        first = None
        for dialogue in read_traces(path):
            ok, n, mismatch = compare_dst(dialogue, tracker)
            matched, total = matched + ok, total + n
            first = first or mismatch
        assert total > 0
        assert matched == total, f"{path.name}: {matched}/{total} turns; first mismatch: {first}"


def test_normaliser_maps_onto_ontology_spellings(mwdata):
    normalise = ValueNormalizer(mwdata.value_dict)
    assert normalise("hotel", "area", "Center") == "centre"  # via the centre/center rewriting
    assert normalise("hotel", "name", "the  Acorn Guest House") == "acorn guest house"  # containment
    assert (
        normalise("restaurant", "food", "european") == "european"
    )  # exact beats an earlier containing value
    # near spelling of a long value (edit distance <= 3 at 15+ characters)
    assert normalise("attraction", "name", "museum of archeology and anthropology") == (
        "museum of archaelogy and anthropology"
    )
    assert normalise("taxi", "leaveAt", "after 14:30") == "14:30"  # no listed values: the time is extracted
    assert normalise("hotel", "day", "Next  Monday") == "next monday"  # unlisted slot: lower-cased, squeezed
    assert normalise("hotel", "stars", "dontcare") == "dontcare"


def test_update_writes_search_booking_and_request_slots(mwdata):
    tracker = RuleDST.from_data(mwdata)
    previous = [["Request", "Hotel", "Area", "?"]]
    state = tracker.update(
        [
            ["Inform", "Hotel", "Area", "Center"],
            ["Inform", "Hotel", "Stay", "3"],
            ["Inform", "Hotel", "none", "none"],
            ["Inform", "Train", "Id", "TR1234"],
            ["Request", "Hotel", "Post", "?"],
            ["Request", "Taxi", "Car", "?"],
            ["thank", "general", "none", "none"],
        ],
        previous,
    )
    assert state.belief_state["hotel"]["semi"]["area"] == "centre"
    assert state.belief_state["hotel"]["book"]["stay"] == "3"
    assert state.belief_state["train"]["book"]["trainID"] == "tr1234"
    assert state.request_state == {"hotel": {"postcode": 0}, "taxi": {"taxi_types": 0}}
    assert state.system_action == previous
    assert state["belief_state"] is state.belief_state  # ConvLab-style reads


def test_reset_gives_an_independent_default_state(mwdata):
    tracker = RuleDST.from_data(mwdata)
    tracker.update([["Inform", "Restaurant", "Food", "italian"], ["Request", "Restaurant", "Phone", "?"]])
    tracker.state.belief_state["hotel"]["book"]["booked"].append({"name": "x"})
    state = tracker.reset()
    assert state == DialogueState()
    assert state.belief_state == default_belief_state()
    assert state.belief_state["hotel"]["book"]["booked"] == []
    assert list(state.belief_state) == [
        "police",
        "hotel",
        "attraction",
        "restaurant",
        "hospital",
        "taxi",
        "train",
    ]
