import random

import pytest

from envs.multiwoz.parity.system import compare_rule_policy
from envs.multiwoz.parity.traces import read_traces
from envs.multiwoz.rule_policy import RulePolicy


@pytest.fixture(scope="module")
def policy(database):
    return RulePolicy(database)


@pytest.fixture(scope="module")
def rule_dialogues(trace_paths):
    path = next(p for p in trace_paths if p.name.startswith("rule_policy_seed0"))
    return list(read_traces(path))


def test_rule_trace_replays_exactly(policy, rule_dialogues):
    matched = total = 0
    for dialogue in rule_dialogues:
        ok, n, first = compare_rule_policy(dialogue, policy)
        assert first is None, first
        matched, total = matched + ok, total + n
    assert matched == total > 0


def _state(turn, user_action):
    return {
        "belief_state": turn["belief_state"],
        "request_state": turn["request_state"],
        "user_action": user_action,
    }


def test_empty_user_acts_read_the_state_change(policy, rule_dialogues):
    """Without user acts the bot infers them from what changed; on a first turn that is every filled slot."""
    turn = rule_dialogues[0]["turns"][0]  # informs restaurant food and price range
    informs = [act for act in turn["user"] if act[2] != "none"]
    assert informs and not turn["request_state"]
    policy.reset()
    inferred = policy.act(_state(turn, []), random.Random(7))
    policy.reset()
    explicit = policy.act(_state(turn, informs), random.Random(7))
    assert inferred == explicit


def test_bye_alone_becomes_greet(policy, rule_dialogues):
    turn = rule_dialogues[0]["turns"][0]
    policy.reset()
    assert policy.act(_state(turn, [["bye", "general", "none", "none"]]), random.Random(0)) == [
        ["greet", "general", "none", "none"]
    ]
