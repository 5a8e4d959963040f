"""End to end: ConvLab-2's rule policy in our agenda environment scores what it scores in ConvLab-2.

Reference (ConvLab-2 b014b81, seeds 0–499): success 0.980; inform P/R/F1 0.869 / 0.992 / 0.908; book rate
0.992; 5.34 rounds. Our world replays ConvLab-2's dialogues exactly, so the tolerance only absorbs the rounding
of the reference: 0.0015 on rates, 0.005 on rounds.
"""

import pytest

from envs.dialogue_env import DialogueEnv
from vrb.evaluate import RuleAgent, run_dialogues

REFERENCE = {
    "success": 0.980,
    "inform_precision": 0.869,
    "inform_recall": 0.992,
    "inform_f1": 0.908,
    "book_rate": 0.992,
    "rounds": 5.34,
}
TOLERANCE = {"rounds": 0.005}


def test_rule_policy_matches_convlab2_on_seeds_0_to_499():
    env = DialogueEnv(simulator="agenda")
    summary = run_dialogues(RuleAgent(env), env, range(500)).summary
    for metric, expected in REFERENCE.items():
        assert summary[metric] == pytest.approx(expected, abs=TOLERANCE.get(metric, 0.0015)), metric
