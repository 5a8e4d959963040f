"""Speed of the agenda user on one process: goals sampled per second and user turns per second.

Goals/s measures the sampler (``GoalGenerator.sample``) alone in steady state, its generators seeded
beforehand; a cold first pass and the cost of constructing a new ``np.random.RandomState`` per goal are reported
beside it (see ``bench_goals``). Timings are wall-clock (the sampler also in process CPU time); the JSON records
the load average.

User turns are timed under two system behaviours: a random system (1-3 acts a turn from ``sys_da_voc.txt``,
lexicalised with values from the value set and the database) and the recorded golden traces (each turn's
recorded system acts, the RNG restored as recorded). Only ``respond`` is timed; drawing the system acts is not.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import random
import sys
import time
from pathlib import Path

import numpy as np

from envs.multiwoz import data as mw_data
from envs.multiwoz.agenda import UserSimulator
from envs.multiwoz.db import Database
from envs.multiwoz.goal import GoalGenerator
from envs.multiwoz.ontology import SYSTEM_SLOT_TO_GOAL_SLOT
from envs.multiwoz.parity.traces import read_traces, rng_at, traces_dir

DEFAULT_OUT = Path(__file__).resolve().parent / "results" / "bench_user.json"
ENTITY_DOMAINS = ("attraction", "hotel", "restaurant", "train")
BOOKING_VALUES = {
    "Day": ["monday", "friday", "sunday"],
    "Time": ["12:30", "18:45"],
    "Stay": ["1", "2", "4"],
    "People": ["1", "2", "5"],
    "Ref": ["A1B2C3D4", "00000042"],
}


class RandomSystem:
    """1-3 vocabulary acts a turn, each value drawn from what that act's slot holds in the database (or the
    value set), as a system lexicalising from database entities would say it."""

    def __init__(self, data: mw_data.MultiWozData, db: Database, rng: random.Random):
        self.rng = rng
        self.acts = []
        for name in data.sys_act_vocab:
            domain, intent, slot, value = name.split("-")
            self.acts.append((intent, domain, slot, value, self._values(data, db, domain, slot)))

    @staticmethod
    def _values(data: mw_data.MultiWozData, db: Database, domain: str, slot: str) -> list[str]:
        field = SYSTEM_SLOT_TO_GOAL_SLOT.get(domain.lower(), {}).get(slot.lower())
        values = set(data.value_set.get(domain.lower(), {}).get(field, ()))
        if domain.lower() in ENTITY_DOMAINS:
            values |= {str(record[field]) for record in db.records(domain.lower()) if field in record}
        return sorted(values) or BOOKING_VALUES.get(slot, ["1", "2", "3"])

    def act(self) -> list[list[str]]:
        acts = []
        for intent, domain, slot, value, values in self.rng.sample(self.acts, self.rng.randint(1, 3)):
            acts.append([intent, domain, slot, value if value in ("none", "?") else self.rng.choice(values)])
        return acts


def seeded_generators(seeds: range) -> list[tuple[random.Random, np.random.RandomState]]:
    """A ``random.Random`` and a ``RandomState`` per seed, built before any clock starts."""
    pairs = []
    for seed in seeds:
        np_rng = np.random.RandomState()
        np_rng.seed(seed)  # the same stream as RandomState(seed)
        pairs.append((random.Random(seed), np_rng))
    return pairs


def time_sampler(generator: GoalGenerator, seeds: range) -> tuple[float, float, list[dict]]:
    """Wall and process-CPU seconds of ``sample`` alone over ``seeds``, and the goals."""
    pairs = seeded_generators(seeds)
    started, cpu_started = time.perf_counter(), time.process_time()
    goals = [generator.sample(rng, np_rng) for rng, np_rng in pairs]
    return time.perf_counter() - started, time.process_time() - cpu_started, goals


def bench_goals(generator: GoalGenerator, user: UserSimulator, count: int) -> dict[str, float]:
    """The goal sampler on its own, what constructing its generators per goal adds, and the user's start.

    ``goals_per_s`` is the sampler in steady state: generators seeded per goal beforehand (so only ``sample``
    runs on the clock), seeds ``[count, 2 count)``, after a first pass over ``[0, count)`` has filled the memo of
    the database look-ups the sampler makes (that first pass is ``goals_per_s_cold``). Constructing a new
    ``np.random.RandomState(s)`` costs more than a sample: numpy first fills a new MT19937's 624-word state from
    OS entropy through a SeedSequence, then the legacy seeding replaces all of it (``RandomState.seed(s)`` on
    an existing one gives the same stream at a fraction of the cost). ``goals_per_s_fresh_rngs`` constructs
    both generators per goal (warm memo), as ``DialogueEnv.reset`` does.
    """
    cold, cold_cpu, _ = time_sampler(generator, range(count))
    warm, warm_cpu, goals = time_sampler(generator, range(count, 2 * count))

    started = time.perf_counter()
    for seed in range(count):
        generator.sample(random.Random(seed), np.random.RandomState(seed))
    fresh = time.perf_counter() - started

    started = time.perf_counter()
    for seed in range(count):
        np.random.RandomState(seed)
    construction = time.perf_counter() - started

    rng, start_time = random.Random(), 0.0
    for seed, goal in zip(range(count, 2 * count), goals, strict=True):
        rng.seed(seed)
        started = time.perf_counter()
        user.start(goal, rng)
        start_time += time.perf_counter() - started
    return {
        "goals": count,
        "goals_per_s": count / warm,
        "us_per_goal": 1e6 * warm / count,
        "cpu_us_per_goal": 1e6 * warm_cpu / count,
        "goals_per_s_cold": count / cold,
        "cpu_us_per_goal_cold": 1e6 * cold_cpu / count,
        "goals_per_s_fresh_rngs": count / fresh,
        "us_per_goal_fresh_rngs": 1e6 * fresh / count,
        "us_per_randomstate_construction": 1e6 * construction / count,
        "starts_per_s": count / start_time,
        "us_per_start": 1e6 * start_time / count,
    }


def bench_random_system(data, db, generator: GoalGenerator, user: UserSimulator, dialogues: int) -> dict:
    system = RandomSystem(data, db, random.Random(12345))
    turns, elapsed = 0, 0.0
    for seed in range(dialogues):
        rng = random.Random(seed)
        user.start(generator.sample(rng, np.random.RandomState(seed)), rng)
        sys_acts: list[list[str]] = []
        while not user.terminated:
            started = time.perf_counter()
            user.respond(sys_acts)
            elapsed += time.perf_counter() - started
            turns += 1
            sys_acts = system.act()
    return {
        "dialogues": dialogues,
        "turns": turns,
        "turns_per_s": turns / elapsed,
        "us_per_turn": 1e6 * elapsed / turns,
    }


def bench_traces(user: UserSimulator, paths: list[Path]) -> dict:
    dialogues = []
    for path in paths:
        for dialogue in read_traces(path):
            seed = dialogue["seed"]
            turns = [(rng_at(seed, t["rng_before_user"]), t["sys_in"]) for t in dialogue["turns"]]
            dialogues.append((dialogue["goal_raw"], rng_at(seed, dialogue["rng_after_goal"]), turns))
    count, elapsed = 0, 0.0
    for goal_raw, rng, turns in dialogues:
        user.start(goal_raw, rng)
        for turn_rng, sys_in in turns:
            user.rng = turn_rng
            started = time.perf_counter()
            user.respond(sys_in)
            elapsed += time.perf_counter() - started
            count += 1
    return {
        "files": [p.name for p in paths],
        "dialogues": len(dialogues),
        "turns": count,
        "turns_per_s": count / elapsed,
        "us_per_turn": 1e6 * elapsed / count,
    }


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--goals", type=int, default=5000, help="goals to sample for goals/s")
    parser.add_argument("--dialogues", type=int, default=2000, help="dialogues against the random system")
    parser.add_argument("--out", type=Path, default=DEFAULT_OUT, help="where to write the JSON results")
    parser.add_argument("--data-dir", default=None, help="MultiWOZ data folder (default: resolved as usual)")
    args = parser.parse_args(argv)
    data = mw_data.load(args.data_dir)
    db = Database.from_data(data)
    generator = GoalGenerator.from_data(data, db)
    user = UserSimulator.from_data(data)
    results = {
        "python": sys.version.split()[0],
        "machine": platform.platform(),
        "load_average_before": [round(x, 2) for x in os.getloadavg()],
        "goal_sampling": bench_goals(generator, user, args.goals),
        "random_system": bench_random_system(data, db, generator, user, args.dialogues),
    }
    paths = sorted(traces_dir().glob("*.jsonl.gz"))
    if paths:
        results["recorded_traces"] = bench_traces(user, paths)
    results["load_average_after"] = [round(x, 2) for x in os.getloadavg()]
    text = json.dumps(results, indent=2)
    print(text)
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(text + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
