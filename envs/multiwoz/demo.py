"""Watch a system talk to the agenda user: ``python -m envs.multiwoz.demo --policy rule --seed 3``.

Runs one seeded dialogue in ``DialogueEnv`` and prints the user's goal, every turn as template text
(``TemplateNLG``, both sides) with its dialogue acts beneath, and the dialogue's metrics in both definitions
(ConvLab-2's and the GDPL/VRB papers', see ``envs.multiwoz.evaluator``). Systems (``--policy``):

* ``rule``: ConvLab-2's handcrafted system policy, drawing from the dialogue's own random stream (``env.rng``)
  as ConvLab-2's did, so the dialogue is the one ConvLab-2 records for the seed.
* ``random``: 1-3 of the 209 system acts a turn, chosen as the recorded random-policy traces chose them (from
  ``random.Random("random_policy-<seed>")``) and lexicalised by the environment.
* ``scripted``: a small system that offers the first database match, answers requests and books.
"""

from __future__ import annotations

import random
import sys
from collections.abc import Callable, Mapping, Sequence
from typing import Any, Protocol

import numpy as np

from envs.acts import Act
from envs.cli import MAX_SEED, ArgumentParser, command, seed_type
from envs.dialogue_env import DialogueEnv
from envs.multiwoz import data as mw_data
from envs.multiwoz.db import Database
from envs.multiwoz.evaluator import DialogueMetrics, summarize
from envs.multiwoz.nlg import TemplateNLG
from envs.multiwoz.ontology import NO_CONSTRAINT_VALUES, SYSTEM_ACT_SLOT, USER_ACT_SLOT
from envs.multiwoz.rule_policy import RulePolicy
from envs.multiwoz.vector import ACTION_DIM

BOOK_SLOTS = frozenset({"people", "day", "stay", "time"})
ENTITY_DOMAINS = ("attraction", "hotel", "restaurant", "train")
NAME_SLOT = {"train": ("Id", "trainID")}  # how the system names an entity, when not by "Name"
RANDOM_POLICY_ACTS = (1, 3)  # fewest and most acts a turn of the random policy
METRIC_ROWS = (  # (label, ConvLab-2 key, papers' key); None: the definition has no such number
    ("success", "success", "paper_success"),
    ("success within limit", "success_within_limit", None),
    ("book rate / match", "book_rate", "paper_match"),
    ("inform precision", "inform_precision", "paper_inform_precision"),
    ("inform recall", "inform_recall", "paper_inform_recall"),
    ("inform F1", "inform_f1", "paper_inform_f1"),
    ("turns", "turns", "paper_turns"),
    ("final goal in database", "final_goal_analyze", None),
    ("user goal complete", "complete", None),
)


class Agent(Protocol):
    """A system to watch: ``reset`` at each dialogue's start, ``act`` on the env and its latest observation."""

    """A system in the demo: a 209-act 0/1 vector (``env.step``) or lexicalised acts (``env.step_acts``)."""

    def reset(self, seed: int) -> None: ...

    def act(self, env: DialogueEnv, observation: np.ndarray) -> np.ndarray | list[Act]: ...


class ScriptedSystem:
    """A deliberately simple system: remembers the user's constraints, offers the first database match,
    informs whatever the user requests about it, books when given booking details, and says bye back."""

    def __init__(self, db: Database):
        self.db = db
        self.goal_slot = {
            domain.lower(): {act: slot for slot, act in slots.items()}
            for domain, slots in USER_ACT_SLOT.items()
        }
        self.reset()

    def reset(self, seed: int = 0) -> None:
        self.constraints: dict[str, dict[str, str]] = {}
        self.booking: dict[str, dict[str, str]] = {}
        self.taxi: Mapping[str, str] | None = None

    def act(self, env: DialogueEnv, observation: np.ndarray) -> list[Act]:
        return self.reply(env.user_acts, env.rng)

    def reply(self, user_acts: Sequence[Act], rng: random.Random) -> list[Act]:
        requested: list[str] = []
        domain = None
        for intent, act_domain, slot, value in user_acts:
            if act_domain == "general":
                if intent == "bye":
                    return [["bye", "general", "none", "none"]]
                continue
            domain = act_domain.lower()
            goal_slot = self.goal_slot.get(domain, {}).get(slot)
            if intent == "Request":
                requested.append(slot)
            elif intent == "Inform" and goal_slot is not None:
                target = self.booking if goal_slot in BOOK_SLOTS and domain != "taxi" else self.constraints
                target.setdefault(domain, {})[goal_slot] = self._resolve(goal_slot, value)
        if domain is None:
            return [["reqmore", "general", "none", "none"]]
        if domain == "taxi":
            return self._taxi(requested, rng)
        found = self.db.query(domain, self._search_constraints(domain))
        if not found:
            return [["NoOffer", domain.capitalize(), "none", "none"]]
        return self._about(domain, found[0], requested)

    def _resolve(self, slot: str, value: str) -> str:
        """The user's "same area as the hotel" / "the same day": the value it said for another domain."""
        if "same" not in value:
            return value
        for remembered in (self.constraints, self.booking):
            for known in remembered.values():
                if "same" not in known.get(slot, "same"):
                    return known[slot]
        return value

    def _search_constraints(self, domain: str) -> list[tuple[str, str]]:
        return [
            (slot, value)
            for slot, value in self.constraints.get(domain, {}).items()
            if value not in NO_CONSTRAINT_VALUES
        ]

    def _about(self, domain: str, entity: Mapping[str, Any], requested: Sequence[str]) -> list[Act]:
        act_domain = domain.capitalize()
        fields = SYSTEM_ACT_SLOT[act_domain]
        acts = [
            ["Inform", act_domain, slot, str(entity.get(fields.get(slot) or "", "none"))]
            for slot in requested
        ]
        if domain in self.booking and domain in ENTITY_DOMAINS:
            acts.append(["Book", "Booking", "Ref", str(entity.get("Ref", "none"))])
            del self.booking[domain]
        if not acts:
            slot, field = NAME_SLOT.get(domain, ("Name", "name"))
            acts.append(["Inform", act_domain, slot, str(entity.get(field, "none"))])
        return acts

    def _taxi(self, requested: Sequence[str], rng: random.Random) -> list[Act]:
        if self.taxi is None:
            self.taxi = self.db.taxi(rng)
        car = f"{self.taxi['taxi_colors']} {self.taxi['taxi_types']}"
        return [["Inform", "Taxi", "Car", car], ["Inform", "Taxi", "Phone", self.taxi["taxi_phone"]]]


class RuleAgent:
    """ConvLab-2's rule policy on the tracker's state, sharing the dialogue's random stream."""

    def __init__(self, db: Database):
        self.policy = RulePolicy(db)

    def reset(self, seed: int) -> None:
        self.policy.reset()

    def act(self, env: DialogueEnv, observation: np.ndarray) -> list[Act]:
        return self.policy.act(env.state, env.rng)


class RandomAgent:
    """1-3 distinct acts of the 209 a turn, drawn as the recorded random-policy traces drew them."""

    def __init__(self) -> None:
        self.rng = random.Random()

    def reset(self, seed: int) -> None:
        self.rng = random.Random(f"random_policy-{seed}")

    def act(self, env: DialogueEnv, observation: np.ndarray) -> np.ndarray:
        chosen = self.rng.sample(range(ACTION_DIM), self.rng.randint(*RANDOM_POLICY_ACTS))
        action = np.zeros(ACTION_DIM, dtype=np.int8)
        action[chosen] = 1
        return action


POLICIES: dict[str, Callable[[Database], Agent]] = {
    "rule": RuleAgent,
    "random": lambda db: RandomAgent(),
    "scripted": ScriptedSystem,
}


def format_act(act: Sequence[str]) -> str:
    intent, domain, slot, value = act
    return f"{intent}({domain}" + ("" if slot == "none" else f", {slot}={value}") + ")"


def format_goal(goal: Mapping[str, Any], ordering: Sequence[str]) -> list[str]:
    lines = []
    for domain in ordering:
        lines.append(f"  {domain}")
        for part, content in goal[domain].items():
            if isinstance(content, dict):
                content = ", ".join(f"{slot}={value}" for slot, value in content.items())
            elif isinstance(content, list):
                content = ", ".join(content)
            lines.append(f"    {part:<14} {content}")
    return lines


def format_metrics(metrics: DialogueMetrics) -> list[str]:
    """The dialogue's scores in both definitions, side by side."""
    summary = summarize([metrics])

    def cell(key: str | None) -> str:
        if key is None:
            return "-"
        value = summary[key]
        return "n/a" if value is None else f"{value:.3f}".rstrip("0").rstrip(".")

    lines = [f"metrics{'':<18} {'ConvLab-2':>10} {'papers':>10}"]
    lines += [f"  {label:<23} {cell(ours):>10} {cell(paper):>10}" for label, ours, paper in METRIC_ROWS]
    return lines


def run_dialogue(
    seed: int,
    policy: str | Agent = "rule",
    data_dir: str | None = None,
    simulator: str = "agenda",
    name: str = "",
) -> tuple[list[str], DialogueMetrics]:
    """One seeded dialogue as printable lines (goal, turns as text then acts, outcome, metrics) and its metrics;
    ``policy`` names a built-in system or is any ``Agent``."""
    env = DialogueEnv(simulator=simulator, data_dir=data_dir)
    agent = POLICIES[policy](env.world.db) if isinstance(policy, str) else policy
    nlg = {side: TemplateNLG(env.world.data, side=side) for side in ("user", "system")}
    observation, _ = env.reset(seed=seed)
    agent.reset(seed)
    ordering = env.goal["domain_ordering"]
    lines = [
        f"dialogue seed {seed}, system {name or policy!r}, {simulator} user",
        f"user goal (domains in order {', '.join(ordering)})",
    ]
    lines += format_goal(env.goal, ordering)
    terminated = truncated = False
    info: dict[str, Any] = {}
    while True:
        lines.append(f"round {env.rounds}")
        lines.append(f"  user:   {nlg['user'].generate(env.user_acts)}")
        lines += [f"          {format_act(act)}" for act in env.user_acts]
        if terminated or truncated:
            break
        action = agent.act(env, observation)
        observation, _, terminated, truncated, info = (
            env.step_acts(action) if isinstance(action, list) else env.step(action)
        )
        lines.append(f"  system: {nlg['system'].generate(env.sys_acts)}")
        lines += [f"          {format_act(act)}" for act in env.sys_acts]
    ending = "the user ended the dialogue" if terminated else f"truncated at {env.max_rounds} rounds"
    lines.append(f"end: {ending} after {env.rounds} rounds")
    lines.append("final user goal")
    lines += format_goal(env.user.domain_goals, ordering)
    lines += format_metrics(info["metrics"])
    return lines, info["metrics"]


@command(mw_data.DataError)
def main(argv: Sequence[str] | None = None) -> int:
    parser = ArgumentParser(prog="python -m envs.multiwoz.demo", description=__doc__.splitlines()[0])
    parser.add_argument("--seed", type=seed_type, default=0, help=f"dialogue seed, 0..{MAX_SEED}")
    parser.add_argument("--policy", choices=sorted(POLICIES), default="rule", help="the system to talk to")
    parser.add_argument("--data-dir", default=None, help="MultiWOZ data folder (default: resolved as usual)")
    args = parser.parse_args(argv)
    lines, _ = run_dialogue(args.seed, args.policy, args.data_dir)
    print("\n".join(lines))
    return 0


if __name__ == "__main__":
    sys.exit(main())
