import json
import math
import random
from collections import Counter

import numpy as np
import pytest

from envs.multiwoz.db import Database
from envs.multiwoz.goal import GoalGenerator
from envs.multiwoz.parity.traces import read_traces, rng_position

STAT_GOALS = 5_000
MIN_P_VALUE = 1e-3  # chi-square goodness of fit; the seeds are fixed, so the test is deterministic
HELD_OUT_SEEDS = range(200, 1000)


@pytest.fixture(scope="module")
def generator(mwdata, database):
    return GoalGenerator.from_data(mwdata, database)


def seeded(seed):
    return random.Random(seed), np.random.RandomState(seed)


def as_json(goal):
    return json.dumps(goal)  # key order included: the agenda user walks these dicts in order


def test_goals_match_convlab_traces(generator, trace_paths):
    checked, mismatches = 0, []
    for path in trace_paths:
        for dialogue in read_traces(path):
            seed = dialogue["seed"]
            rng, np_rng = seeded(seed)
            goal = generator.sample(rng, np_rng)
            if as_json(goal) != as_json(dialogue["goal_raw"]):
                mismatches.append((path.name, seed, "goal"))
            elif rng_position(rng, seed) != dialogue["rng_after_goal"]:
                mismatches.append((path.name, seed, "rng position"))
            checked += 1
    assert checked == 400
    assert not mismatches, f"{len(mismatches)}/{checked} differ, first: {mismatches[:5]}"


def test_same_seeds_same_goal(generator):
    for seed in (0, 7, 123):
        first = generator.sample(*seeded(seed))
        assert as_json(generator.sample(*seeded(seed))) == as_json(first)
    rng, np_rng = seeded(5)
    run_a = [as_json(generator.sample(rng, np_rng)) for _ in range(20)]
    rng, np_rng = seeded(5)
    assert [as_json(generator.sample(rng, np_rng)) for _ in range(20)] == run_a


def test_held_out_seeds_sample_without_error(generator):
    for seed in HELD_OUT_SEEDS:
        goal = generator.sample(*seeded(seed))
        assert goal["domain_ordering"], seed


@pytest.fixture(scope="module")
def many_goals(generator):
    rng, np_rng = seeded(2024)
    return [generator.sample(rng, np_rng) for _ in range(STAT_GOALS)]


def test_domain_count_follows_the_goal_model(mwdata, many_goals):
    """Chi-square over the number of domains (1, 2, 3). Empty orderings are redrawn, so the expected shares
    are the non-empty orderings' probabilities renormalised. The train-drop rule cannot change the count with
    this database: every route runs at the same times every day (checked in the next test)."""
    expected = Counter()
    for ordering, p in mwdata.goal_model.domain_ordering_dist.items():
        if ordering:
            expected[len(ordering)] += p
    total = sum(expected.values())
    observed = Counter(len(goal["domain_ordering"]) for goal in many_goals)
    assert set(observed) <= set(expected)
    statistic = sum(
        (observed[k] - STAT_GOALS * p / total) ** 2 / (STAT_GOALS * p / total) for k, p in expected.items()
    )
    degrees_of_freedom = len(expected) - 1
    assert degrees_of_freedom == 2  # then the chi-square survival function is exp(-x / 2)
    p_value = math.exp(-statistic / 2)
    assert p_value > MIN_P_VALUE, (observed, {k: STAT_GOALS * p / total for k, p in expected.items()})


def test_train_timetable_is_the_same_every_day(mwdata):
    by_day = {}
    for record in mwdata.databases["train"]:
        route = (record["departure"], record["destination"], record["leaveAt"], record["arriveBy"])
        by_day.setdefault(record["day"], set()).add(route)
    assert len(by_day) == 7
    assert all(routes == by_day["monday"] for routes in by_day.values())


def test_sampled_goals_are_well_formed(database, many_goals):
    for goal in many_goals:
        ordering = goal["domain_ordering"]
        assert ordering and list(goal) == [*ordering, "domain_ordering"]
        for domain in ordering:
            domain_goal = goal[domain]
            assert "reqt" in domain_goal or "book" in domain_goal, goal
            info = domain_goal["info"]
            if domain in ("taxi", "train"):
                assert ("leaveAt" in info) != ("arriveBy" in info), goal
            if domain == "taxi":
                continue
            # ConvLab-2 repairs or redraws constraints until the database has a match; later rules keep one.
            assert database.query(domain, info.items()), (domain, info)
            if "fail_info" in domain_goal:
                assert not database.query(domain, domain_goal["fail_info"].items()), (domain, domain_goal)


def test_train_dropped_when_no_train_runs_on_the_hotel_days(mwdata):
    """With a Monday-only timetable, a train moved to another hotel day has no match: the train goes from the
    goal and from the ordering (ConvLab-2 raised TypeError on that path)."""
    tables = dict(mwdata.databases)
    tables["train"] = [record for record in tables["train"] if record["day"] == "monday"]
    generator = GoalGenerator(mwdata.goal_model, Database(tables))
    rng, np_rng = seeded(11)
    dropped = 0
    for _ in range(3_000):
        probe = np.random.RandomState()
        probe.set_state(np_rng.get_state())
        drawn = ()
        while not drawn:  # the ordering is the goal's first numpy draw
            drawn = generator.orderings.draw(probe)
        goal = generator.sample(rng, np_rng)
        ordering = goal["domain_ordering"]
        assert list(goal) == [*ordering, "domain_ordering"]
        if ordering != drawn:
            assert [d for d in drawn if d != "train"] == list(ordering) and "book" in goal["hotel"], goal
            dropped += 1
    assert dropped > 0
