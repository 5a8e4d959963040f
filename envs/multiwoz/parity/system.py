"""Replay the system side of golden ConvLab-2 traces (rule DST, vectoriser, rule policy, evaluator) and report
where it departs.

Each ``compare_*`` returns ``(matched, total, first_mismatch)``; ``first_mismatch`` is None on full parity.

When the evaluator's reward is computed: ConvLab-2's session asks the user for its turn, feeds the evaluator the
system acts the user answered and the user's acts, computes the reward, and only then lets the system policy act.
So the reward's taxi look-up draws from the global stream between the user's own draws and ``rng_before_sys``,
ending exactly at ``rng_before_sys``. The replay restores the stream at the first position in
``[rng_before_user, rng_before_sys]`` from which the reward's draws end there, and counts a turn whose reward
cannot land there as a mismatch.
"""

from __future__ import annotations

import random
from collections.abc import Mapping
from typing import Any

from envs.multiwoz.dst import RuleDST
from envs.multiwoz.evaluator import Evaluator
from envs.multiwoz.parity.traces import Mismatch, TurnTally, advance, rng_at, rng_position
from envs.multiwoz.rule_policy import RulePolicy
from envs.multiwoz.vector import Vectoriser, current_domain

# Trace ``final`` field -> how to read it from DialogueMetrics / the evaluator (booked entities as their Ref).
FINAL_FIELDS = {
    "success": lambda m, e: m.success,
    "success_evaluate_py": lambda m, e: m.success_within_limit,
    "complete": lambda m, e: int(m.complete),
    "book_rate": lambda m, e: m.book_rate,
    "book_scores": lambda m, e: list(m.book_scores),
    "inform_precision": lambda m, e: m.inform_precision,
    "inform_recall": lambda m, e: m.inform_recall,
    "inform_f1": lambda m, e: m.inform_f1,
    "inform_tp_fp_fn": lambda m, e: list(m.inform_counts),
    "final_goal_analyze": lambda m, e: m.final_goal_analyze,
    "rounds": lambda m, e: m.rounds,
    "turns": lambda m, e: m.turns,
    "terminated": lambda m, e: m.terminated,
    "evaluator_booked": lambda m, e: {
        d: v["Ref"] if isinstance(v, Mapping) else v for d, v in e.booked.items()
    },
    "evaluator_cur_domain": lambda m, e: e.cur_domain,
}


def compare_dst(dialogue: Mapping[str, Any], tracker: RuleDST) -> tuple[int, int, Mismatch | None]:
    """Track every round's user acts with a fresh tracker; compare ``belief_state`` and ``request_state``."""
    tracker.reset()
    tally = TurnTally(dialogue["seed"])
    for turn in dialogue["turns"]:
        state = tracker.update(turn["user"], turn["sys_in"])
        tally.add(
            turn["t"],
            [(name, turn[name], getattr(state, name)) for name in ("belief_state", "request_state")],
        )
    return tally.matched, len(dialogue["turns"]), tally.first


def compare_vector(dialogue: Mapping[str, Any], vectoriser: Vectoriser) -> tuple[int, int, Mismatch | None]:
    """Replay one recorded dialogue through ``vectoriser``: (turns matched, turns, first mismatch or None).

    Every turn checks the state vector (user acts, previous round's system acts, belief state) against
    ``state_vec_nz`` and the system acts against ``sys_act_vec_nz``; random-policy turns also lexicalise
    ``random_choice`` with the RNG at ``rng_before_sys`` and check ``sys`` and the RNG position reached.
    """
    seed = dialogue["seed"]
    turns = dialogue["turns"]
    tally, domain = TurnTally(seed), None
    previous: list[Any] = []
    for k, turn in enumerate(turns):
        domain = current_domain(turn["user"], domain)
        checks: list[tuple[str, Any, Any]] = [
            (
                "state_vec_nz",
                turn["state_vec_nz"],
                vectoriser.state_indices(turn["belief_state"], turn["user"], previous, turn["terminated"]),
            ),
            ("sys_act_vec_nz", turn["sys_act_vec_nz"], vectoriser.action_indices(turn["sys"])),
        ]
        if turn.get("random_choice") is not None:
            rng = rng_at(seed, turn["rng_before_sys"])
            acts = vectoriser.action_to_acts(turn["random_choice"], turn["belief_state"], rng, domain)
            checks.append(("sys", turn["sys"], acts))
            if k + 1 < len(turns):
                checks.append(
                    ("rng_before_user (next turn)", turns[k + 1]["rng_before_user"], rng_position(rng, seed))
                )
        tally.add(turn["t"], checks)
        previous = turn["sys"]
    return tally.matched, len(turns), tally.first


def compare_rule_policy(dialogue: Mapping[str, Any], policy: RulePolicy) -> tuple[int, int, Mismatch | None]:
    """Replay one recorded rule-policy dialogue: (turns matched, turns, first mismatch or None).

    The policy is reset, then fed every recorded state in order with the RNG at ``rng_before_sys``; a turn
    matches when the acts equal ``sys`` and the RNG ends where the next user turn began.
    """
    seed = dialogue["seed"]
    turns = dialogue["turns"]
    policy.reset()
    tally = TurnTally(seed)
    for k, turn in enumerate(turns):
        rng = rng_at(seed, turn["rng_before_sys"])
        state = {
            "belief_state": turn["belief_state"],
            "request_state": turn["request_state"],
            "user_action": turn["user"],
        }
        checks: list[tuple[str, Any, Any]] = [("sys", turn["sys"], policy.act(state, rng))]
        if k + 1 < len(turns):
            checks.append(
                ("rng_before_user (next turn)", turns[k + 1]["rng_before_user"], rng_position(rng, seed))
            )
        tally.add(turn["t"], checks)
    return tally.matched, len(turns), tally.first


def _reward_landing_at(
    evaluator: Evaluator, stream: random.Random, start: int, end: int
) -> tuple[int, int | None]:
    """The reward, and the first position in [start, end] (``stream`` sits at ``start``) from which its draws
    end exactly at ``end``; None when there is no such position."""
    target = random.Random()
    target.setstate(stream.getstate())
    advance(target, end - start)
    target_state = target.getstate()
    probe = random.Random()
    for position in range(start, end + 1):
        probe.setstate(stream.getstate())
        advance(probe, position - start)
        reward = evaluator.reward(probe)
        if probe.getstate() == target_state:
            return reward, position
    return reward, None


def compare_eval(dialogue: Mapping[str, Any], evaluator: Evaluator) -> tuple[int, int, Mismatch | None]:
    """Feed the goal and every round's ``sys_in``/``user``; compare each ``reward_eval`` and every ``final`` field.

    The goal the evaluator reads is the user's live goal: the round's ``goal_after_user``, then ``goal_final``.
    """
    seed, turns = dialogue["seed"], dialogue["turns"]
    evaluator.reset(dialogue["goal_initial"])
    stream, position = rng_at(seed, 0), 0
    matched, first = 0, None

    def record(turn: int | None, field: str, expected: Any, actual: Any) -> None:
        nonlocal matched, first
        if expected == actual:
            matched += 1
        elif first is None:
            first = Mismatch(seed, turn, field, expected, actual)

    for turn in turns:
        evaluator.goal = turn["goal_after_user"]
        evaluator.add_system_acts(turn["sys_in"])
        evaluator.add_user_acts(turn["user"])
        advance(stream, turn["rng_before_user"] - position)
        position = turn["rng_before_user"]
        reward, start = _reward_landing_at(evaluator, stream, position, turn["rng_before_sys"])
        if start is None:
            record(
                turn["t"],
                "reward_eval draws end at rng_before_sys",
                turn["rng_before_sys"],
                "no start position",
            )
        else:
            record(turn["t"], "reward_eval", turn["reward_eval"], reward)

    evaluator.goal = dialogue["goal_final"]
    metrics = evaluator.dialogue_metrics(
        len(turns), bool(turns[-1]["terminated"]), rng_at(seed, dialogue["rng_end"])
    )
    final = dialogue["final"]
    for name, read in FINAL_FIELDS.items():
        record(None, name, final[name], read(metrics, evaluator))
    return matched, len(turns) + len(FINAL_FIELDS), first
