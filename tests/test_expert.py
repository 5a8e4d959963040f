import copy
import logging

import numpy as np
import pytest
import torch

from envs.dialogue_env import DialogueEnv
from envs.multiwoz.dst import RuleDST
from envs.multiwoz.vector import (
    ACTION_DIM,
    BELIEF_OFFSET,
    BOOKED_OFFSET,
    STATE_DIM,
    TERMINATED_INDEX,
)
from vrb import expert as expert_module
from vrb.expert import ExpertData, build_expert, cache_key, default_cache_dir, load_expert, turn_acts
from vrb.rollout import Transitions

HAND_CHECKED_DIALOGUE = "PMUL1635"  # first dialogue of val.json.zip: one hotel booking, then a train


@pytest.fixture(scope="module")
def cache_dir(tmp_path_factory):
    return tmp_path_factory.mktemp("expert-cache")


@pytest.fixture(scope="module")
def val_expert(mwdata, vectoriser, cache_dir):
    """ConvLab-2's annotation states (``expert_states=corpus``): the hand-checked vectors below are theirs."""
    return load_expert(mwdata, "val", states="corpus", cache_dir=cache_dir, vectoriser=vectoriser)


@pytest.fixture(scope="module")
def replayed_expert(mwdata, vectoriser, cache_dir):
    return load_expert(mwdata, "val", cache_dir=cache_dir, vectoriser=vectoriser)


@pytest.fixture(scope="module")
def val_corpus(mwdata):
    return mwdata.corpus("val")


def nonzero(row: np.ndarray) -> list[int]:
    return np.flatnonzero(row).tolist()


def test_one_transition_per_system_turn_with_float32_shapes(val_expert, val_corpus):
    n = sum(len(d["log"]) // 2 for d in val_corpus.values())
    assert len(val_expert) == n == 7365
    assert val_expert.split == "val"
    assert val_expert.skipped_turns == 0
    assert val_expert.dialogue_ids == tuple(val_corpus)
    assert val_expert.states.shape == val_expert.next_states.shape == (n, STATE_DIM)
    assert val_expert.actions.shape == (n, ACTION_DIM)
    for array in (val_expert.states, val_expert.actions, val_expert.next_states):
        assert array.dtype == np.float32
        assert set(np.unique(array)) <= {0.0, 1.0}
    assert val_expert.dialogue_index.shape == val_expert.turn_index.shape == (n,)
    assert (val_expert.turn_index % 2 == 1).all()


def test_hand_checked_transitions_of_a_real_dialogue(val_expert, mwdata):
    rows = np.flatnonzero(val_expert.dialogue_index == val_expert.dialogue_ids.index(HAND_CHECKED_DIALOGUE))
    assert val_expert.turn_index[rows].tolist() == [1, 3, 5, 7, 9, 11, 13, 15, 17]
    usr, sys = mwdata.usr_act_vocab, mwdata.sys_act_vocab
    assert (usr[16], usr[18], usr[33]) == ("Hotel-Inform-Day-1", "Hotel-Inform-Name-1", "Hotel-Request-Ref-?")
    assert (sys[43], sys[55], sys[92], sys[94], sys[207]) == (
        "Booking-Book-Ref-1",
        "Booking-Request-Day-?",
        "Hotel-Recommend-Name-1",
        "Hotel-Recommend-Price-1",
        "general-reqmore-none-none",
    )
    hotel_belief = list(
        range(299, 306)
    )  # 287 + hotel slots 12..18, all set: "not mentioned" counts as filled
    free_domain_counts = [320, 326, 332]  # attraction, restaurant, train unconstrained: >= 5 entities each
    hotel_none = 333  # hotel name "wartworth" (a typo) matches no hotel exactly: bucket 0 of 315 + 3 * 6

    # Log turn 5: user informs the (misspelt) hotel name; turn 3 recommended Name x2 / Price x2, of which
    # only the first of each is in the vocabulary (78 + 92, 78 + 94); the system asks for the day.
    turn5 = rows[2]
    assert nonzero(val_expert.states[turn5]) == [
        18,
        78 + 92,
        78 + 94,
        *hotel_belief,
        *free_domain_counts,
        hotel_none,
    ]
    assert nonzero(val_expert.actions[turn5]) == [55]

    # Log turn 7: user gives the day and asks for the reference; the hotel is booked (311 + 3); the system
    # books and offers more help.
    turn7 = rows[3]
    assert nonzero(val_expert.states[turn7]) == [
        16,
        33,
        78 + 55,
        *hotel_belief,
        314,
        *free_domain_counts,
        hotel_none,
    ]
    assert nonzero(val_expert.actions[turn7]) == [43, 207]
    assert np.array_equal(val_expert.next_states[turn5], val_expert.states[turn7])

    # Log turn 17 of 18 is the last system turn: terminated (339), s' = s.
    last = rows[-1]
    assert val_expert.states[last, 339] == 1 and val_expert.states[rows[:-1], 339].sum() == 0
    assert np.array_equal(val_expert.next_states[last], val_expert.states[last])


def test_terminal_turns_keep_their_state_and_others_chain_within_the_dialogue(val_expert):
    terminal = val_expert.terminated
    assert terminal.sum() == len(val_expert.dialogue_ids)  # exactly the last system turn of each dialogue
    assert np.array_equal(val_expert.next_states[terminal], val_expert.states[terminal])
    following = np.flatnonzero(~terminal) + 1
    assert np.array_equal(val_expert.next_states[~terminal], val_expert.states[following])
    assert np.array_equal(val_expert.dialogue_index[~terminal], val_expert.dialogue_index[following])
    changes = np.flatnonzero(np.diff(val_expert.dialogue_index))  # the row before a new dialogue is terminal
    assert terminal[changes].all() and terminal[-1]


def test_to_transitions_gives_the_same_float32_tensors(val_expert):
    batch = val_expert.to_transitions()
    assert isinstance(batch, Transitions) and len(batch) == len(val_expert)
    for tensor, array in (
        (batch.states, val_expert.states),
        (batch.actions, val_expert.actions),
        (batch.next_states, val_expert.next_states),
    ):
        assert tensor.dtype == torch.float32
        assert torch.equal(tensor, torch.from_numpy(array))


def test_cache_hit_returns_identical_arrays_without_rebuilding(val_expert, mwdata, cache_dir, monkeypatch):
    monkeypatch.setattr(expert_module, "build_expert", lambda *a, **k: pytest.fail("rebuilt on a cache hit"))
    again = load_expert(mwdata, "val", states="corpus", cache_dir=cache_dir)
    for name in ("states", "actions", "next_states", "dialogue_index", "turn_index"):
        assert np.array_equal(getattr(again, name), getattr(val_expert, name)), name
    assert (again.split, again.dialogue_ids, again.skipped_turns) == (
        "val",
        val_expert.dialogue_ids,
        val_expert.skipped_turns,
    )


def tiny_expert(split: str) -> ExpertData:
    zeros = np.zeros((1, STATE_DIM), np.float32)
    return ExpertData(
        split,
        zeros,
        np.zeros((1, ACTION_DIM), np.float32),
        zeros,
        np.zeros(1, np.int32),
        np.ones(1, np.int32),
        ("X",),
    )


@pytest.mark.slow
def test_changed_data_checksum_or_unreadable_cache_rebuilds(mwdata, tmp_path, monkeypatch):
    builds = []

    def counting_build(corpus, vectoriser, split, tracker):
        builds.append(split)
        return tiny_expert(split)

    monkeypatch.setattr(expert_module, "build_expert", counting_build)
    monkeypatch.setattr(expert_module, "Vectoriser", lambda data, db: None)
    monkeypatch.setattr(expert_module.Database, "from_data", staticmethod(lambda data: None))
    load_expert(mwdata, "val", cache_dir=tmp_path)
    load_expert(mwdata, "val", cache_dir=tmp_path)
    assert builds == ["val"]
    assert cache_key(mwdata, "val", "corpus") != cache_key(mwdata, "val", "replayed")
    load_expert(mwdata, "val", states="corpus", cache_dir=tmp_path)  # another state source: another entry
    assert builds == ["val", "val"]
    del builds[1:]
    for path in tmp_path.glob("expert-val-corpus-*.npz"):
        path.unlink()

    key = cache_key(mwdata, "val")
    changed = {**expert_module.read_checksums(mwdata.root), "val.json.zip": "0" * 64}
    monkeypatch.setattr(expert_module, "read_checksums", lambda root: changed)
    assert cache_key(mwdata, "val") != key
    load_expert(mwdata, "val", cache_dir=tmp_path)
    assert builds == ["val", "val"]
    assert len(list(tmp_path.glob("expert-val-*.npz"))) == 2

    monkeypatch.setattr(expert_module, "EXPERT_VERSION", expert_module.EXPERT_VERSION + "-next")
    load_expert(mwdata, "val", cache_dir=tmp_path)
    assert builds == ["val"] * 3

    for path in tmp_path.glob("expert-val-*.npz"):
        path.write_bytes(b"not a zip")
    assert load_expert(mwdata, "val", cache_dir=tmp_path).split == "val"
    assert builds == ["val"] * 4
    assert not list(tmp_path.glob(".*.tmp"))  # temporary files were renamed into place


def test_malformed_turns_are_skipped_and_counted(val_corpus, vectoriser, caplog):
    good = val_corpus[HAND_CHECKED_DIALOGUE]
    no_metadata = copy.deepcopy(good)
    no_metadata["log"][5]["metadata"] = {}  # this transition is skipped, its acts still precede turn 7
    no_acts = copy.deepcopy(good)
    del no_acts["log"][4]["dialog_act"]  # the user turn before log turn 5: that transition is skipped
    last_broken = copy.deepcopy(good)
    last_broken["log"][17]["dialog_act"] = {"general": [["none", "none"]]}  # no "Domain-Intent" key
    corpus = {
        "good": good,
        "no_metadata": no_metadata,
        "no_acts": no_acts,
        "no_log": {},
        "last_broken": last_broken,
    }
    with caplog.at_level(logging.WARNING, logger="vrb.expert"):
        data = build_expert(corpus, vectoriser, "val")
    assert "skipped 4" in caplog.text
    assert data.skipped_turns == 4
    by_dialogue = {name: data.turn_index[data.dialogue_index == i].tolist() for i, name in enumerate(corpus)}
    assert by_dialogue == {
        "good": [1, 3, 5, 7, 9, 11, 13, 15, 17],
        "no_metadata": [1, 3, 7, 9, 11, 13, 15, 17],
        "no_acts": [1, 3, 7, 9, 11, 13, 15, 17],
        "no_log": [],
        "last_broken": [1, 3, 5, 7, 9, 11, 13, 15],
    }
    good_rows = np.flatnonzero(data.dialogue_index == 0)
    for i, name in ((1, "no_metadata"), (2, "no_acts")):
        rows = np.flatnonzero(data.dialogue_index == i)
        assert np.array_equal(data.states[rows], data.states[np.delete(good_rows, 2)])
        assert np.array_equal(data.next_states[rows[1]], data.states[rows[2]]), name  # turn 3 -> turn 7
    broken_rows = np.flatnonzero(data.dialogue_index == 4)
    assert np.array_equal(data.next_states[broken_rows[-1]], data.states[broken_rows[-1]])
    assert np.array_equal(data.next_states[broken_rows[:-1]], data.states[broken_rows[1:]])


def test_turn_acts_sorts_slots_within_each_domain_intent():
    turn = {
        "dialog_act": {
            "Hotel-Recommend": [["Price", "cheap"], ["Name", "A"], ["Price", "moderate"]],
            "general-bye": [["none", "none"]],
        }
    }
    assert turn_acts(turn) == [
        ["Recommend", "Hotel", "Name", "A"],
        ["Recommend", "Hotel", "Price", "cheap"],
        ["Recommend", "Hotel", "Price", "moderate"],
        ["bye", "general", "none", "none"],
    ]
    assert turn_acts({"dialog_act": {}}) == []
    assert turn_acts({}) is None
    assert turn_acts({"dialog_act": {"Hotel-Inform": [["Area"]]}}) is None


def test_test_split_is_held_out_and_recorded(mwdata, vectoriser, cache_dir, val_expert):
    held_out = load_expert(mwdata, "test", states="corpus", cache_dir=cache_dir, vectoriser=vectoriser)
    assert held_out.split == "test" and len(held_out) == 7372
    assert not set(held_out.dialogue_ids) & set(val_expert.dialogue_ids)
    assert mwdata.training_split() == "val"  # the shipped folder has no train split
    with pytest.raises(ValueError, match="split 'dev'"):
        load_expert(mwdata, "dev", cache_dir=cache_dir)
    with pytest.raises(ValueError, match="expert states 'annotated'"):
        load_expert(mwdata, "val", states="annotated", cache_dir=cache_dir)


def test_default_cache_dir_follows_the_environment(monkeypatch, tmp_path):
    monkeypatch.setenv("VRB_CACHE_DIR", str(tmp_path / "explicit"))
    assert default_cache_dir() == tmp_path / "explicit" / "expert"
    monkeypatch.delenv("VRB_CACHE_DIR")
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "xdg"))
    assert default_cache_dir() == tmp_path / "xdg" / "vrb" / "expert"


class ScriptedUser:
    """Says a corpus dialogue's user acts in order; after the last system turn it ends the dialogue silently."""

    def __init__(self, user_turns: list[list[list[str]]], goal_source):
        self.user_turns, self.goal_source, self.said = user_turns, goal_source, 0

    def start(self, goal_raw, rng) -> None:
        self.goal_source.start(goal_raw, rng)  # only for the evaluator's goal
        self.said = 0

    def respond(self, sys_acts) -> list[list[str]]:
        self.said += 1
        return self.user_turns[self.said - 1] if self.said <= len(self.user_turns) else []

    @property
    def terminated(self) -> bool:
        return self.said > len(self.user_turns)

    @property
    def reward(self) -> float:
        return 0.0

    @property
    def domain_goals(self):
        return self.goal_source.domain_goals


@pytest.mark.parametrize("dialogue_id", [HAND_CHECKED_DIALOGUE, "PMUL1181", "PMUL3470"])
def test_replayed_states_are_the_env_states_under_the_same_acts(replayed_expert, val_corpus, dialogue_id):
    """Teacher-forcing the env with a corpus dialogue's annotated acts gives the replayed expert's vectors."""
    from envs.multiwoz.agenda import UserSimulator

    log = val_corpus[dialogue_id]["log"]
    user_turns, system_turns = [turn_acts(t) for t in log[0::2]], [turn_acts(t) for t in log[1::2]]
    env = DialogueEnv(user=ScriptedUser(user_turns, UserSimulator.from_data(DialogueEnv().world.data)))
    observation, _ = env.reset(seed=0)
    rows = np.flatnonzero(replayed_expert.dialogue_index == replayed_expert.dialogue_ids.index(dialogue_id))
    assert len(rows) == len(system_turns)
    for k, (row, acts) in enumerate(zip(rows, system_turns, strict=True)):
        assert nonzero(replayed_expert.states[row]) == nonzero(observation), f"system turn {k}"
        assert np.array_equal(replayed_expert.actions[row], env.world.vectoriser.acts_to_action(acts))
        observation, _, terminated, _, _ = env.step_acts(acts)
        assert nonzero(replayed_expert.next_states[row]) == nonzero(observation), f"s' of system turn {k}"
    assert terminated


def test_replayed_states_are_what_the_env_can_show(replayed_expert, val_expert):
    """No terminated flag and no booked flag (the rule DST never sets one); fewer belief slots than the
    annotation, where "not mentioned" counts as filled."""
    for data in (replayed_expert, val_expert):
        assert data.actions.shape == (7365, ACTION_DIM) and np.array_equal(data.actions, val_expert.actions)
    assert replayed_expert.states[:, TERMINATED_INDEX].sum() == 0
    assert replayed_expert.states[:, BOOKED_OFFSET : BOOKED_OFFSET + 4].sum() == 0
    belief = slice(BELIEF_OFFSET, BOOKED_OFFSET)
    assert replayed_expert.states[:, belief].sum(1).mean() < 4.5 < val_expert.states[:, belief].sum(1).mean()
    terminal = np.r_[replayed_expert.dialogue_index[1:] != replayed_expert.dialogue_index[:-1], True]
    assert replayed_expert.next_states[terminal, TERMINATED_INDEX].all()
    assert not replayed_expert.next_states[~terminal, TERMINATED_INDEX].any()


def test_a_replay_stops_at_a_turn_the_tracker_cannot_read(val_corpus, vectoriser, mwdata):
    broken = copy.deepcopy(val_corpus[HAND_CHECKED_DIALOGUE])
    del broken["log"][6]["dialog_act"]  # the user turn before system turn 7
    data = build_expert({"broken": broken}, vectoriser, "val", RuleDST.from_data(mwdata))
    assert data.turn_index.tolist() == [1, 3, 5]
    assert data.skipped_turns == 6  # system turns 7, 9, ..., 17
    assert data.next_states[-1, TERMINATED_INDEX] == 1
