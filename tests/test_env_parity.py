"""End to end: the Gymnasium environment replays ConvLab-2's recorded dialogues exactly.

The random-policy trace drives ``step`` with the recorded 209-act choices (so lexicalisation is checked too);
the rule-policy trace drives ``step_acts`` with our rule policy sharing the dialogue's random stream, as
ConvLab-2's policy shared the global one.
"""

import dataclasses

import numpy as np
import pytest

from envs.dialogue_env import DialogueEnv
from envs.multiwoz.parity.traces import read_traces
from envs.multiwoz.rule_policy import RulePolicy

FINAL_FIELDS = (
    "success",
    "complete",
    "book_rate",
    "inform_precision",
    "inform_recall",
    "inform_f1",
    "final_goal_analyze",
    "rounds",
)


def replay(env: DialogueEnv, dialogue: dict, rule_policy: RulePolicy | None) -> list[str]:
    """Play one recorded dialogue through ``env``; the list of differences (empty when exact)."""
    problems = []
    observation, info = env.reset(seed=dialogue["seed"])
    if env.goal != dialogue["goal_raw"] | {"domain_ordering": tuple(dialogue["goal_raw"]["domain_ordering"])}:
        problems.append("goal")
    if rule_policy is not None:
        rule_policy.reset()
    turns = dialogue["turns"]
    for t, turn in enumerate(turns):
        got = {
            "user": info["user_acts"],
            "state_vec_nz": np.flatnonzero(observation).tolist(),
            "reward_eval": info["eval_reward"],
            "reward_user": info["user_reward"],
            "belief_state": info["belief_state"],
        }
        problems += [f"turn {t} {field}" for field, value in got.items() if value != turn[field]]
        if problems or t + 1 == len(turns):
            break
        if rule_policy is None:
            action = np.zeros(env.action_space.n, dtype=np.int8)
            action[turn["random_choice"]] = 1
            observation, reward, terminated, truncated, info = env.step(action)
        else:
            observation, reward, terminated, truncated, info = env.step_acts(
                rule_policy.act(env.state, env.rng)
            )
        if info["sys_acts"] != turn["sys"]:
            problems.append(f"turn {t} sys")
        if reward != turns[t + 1]["reward_eval"]:
            problems.append(f"turn {t} reward")
    if not problems:
        final, metrics = dialogue["final"], dataclasses.asdict(info["metrics"])
        if (terminated or truncated) != True:  # noqa: E712
            problems.append("episode did not end where the trace ends")
        problems += [f"final {name}" for name in FINAL_FIELDS if metrics.get(name) != final[name]]
    return problems


@pytest.mark.parametrize("policy", ["rule", "random"])
def test_environment_replays_trace_exactly(trace_paths, policy):
    (path,) = [p for p in trace_paths if p.name.startswith(policy)]
    env = DialogueEnv(simulator="agenda", reward_mode="evaluator")
    rule_policy = RulePolicy(env.world.db) if policy == "rule" else None
    failures = {}
    for dialogue in read_traces(path):
        problems = replay(env, dialogue, rule_policy)
        if problems:
            failures[dialogue["seed"]] = problems
    assert not failures, f"{len(failures)} dialogues differ, e.g. {list(failures.items())[:3]}"
