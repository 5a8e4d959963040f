"""Speed of the full RL step of ``DialogueEnv``: one process, ``AsyncVectorEnv`` workers, and a profile.

One step is what a learner pays per transition: lexicalising the 209-act action from the database, the agenda
user's turn, the rule DST, the evaluator's reward, the 340-dim observation and the ``info`` dict. Resets (goal
sampling and the user's opening turn) run inside the timed loops, so steps/s and µs/step include their cost;
steps/s counts ``step`` calls. Wall-clock and process CPU time are both reported: on a machine shared with
other jobs the CPU time is the truer cost of a step. Two system policies drive the single-process runs:

* ``random``: 1-3 of the 209 acts a turn, drawn uniformly, through ``env.step`` (the RL path).
* ``rule``: ConvLab-2's rule policy through ``env.step_acts``, sharing ``env.rng``; its own time is counted.

Both drive the agenda user; the random policy also drives the VHUS user (``simulator: vhus``, the trained
simulator from the cache, trained first if there is none). Torch runs single-threaded, as in a training run.

Vector scaling uses the random policy in ``gymnasium.vector.AsyncVectorEnv`` (next-step autoreset: the step
after a dialogue ends is its reset, counted as a step) and reports environment steps summed over workers.
The profile is cProfile over single-process runs (which slows them); its table lists the functions with the largest
cumulative time. All runs share one process and its memoised database look-ups, which a fresh process fills in
its first thousands of steps (a new train-time constraint costs milliseconds once); each run starts after a
500-step warm-up. The JSON records the load average before and after.

    python benchmarks/bench_env.py                     # 20k steps a measurement, 1 and 2 workers
    python benchmarks/bench_env.py --workers 1,2,16    # on a machine with 16 cores

The epoch sampler's own scaling (the learners' worker processes) is ``bench_sampler.py``.
"""

from __future__ import annotations

import argparse
import cProfile
import functools
import json
import os
import platform
import pstats
import random
import sys
import time
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

import gymnasium as gym
import numpy as np
import torch

from envs.dialogue_env import DialogueEnv, build_world
from envs.multiwoz import data as mw_data
from envs.multiwoz.rule_policy import RulePolicy
from envs.multiwoz.vector import ACTION_DIM

DEFAULT_OUT = Path(__file__).resolve().parent / "results" / "bench_env.json"
CONVLAB2_STEPS_PER_S = 10.5  # ConvLab-2 on this 2-core machine, same path
TARGET_STEPS_PER_S = 8000  # the random policy against the agenda user, one process, the aim
VHUS_TARGET_STEPS_PER_S = 2500  # the same policy against VHUS
RANDOM_POLICY_ACTS = (1, 3)
PROFILE_ROWS = 15

Driver = Callable[[DialogueEnv], tuple[Any, float, bool, bool, dict]]


def random_actions(rng: np.random.Generator, count: int) -> np.ndarray:
    """``count`` actions of 1-3 distinct acts each, as a (count, 209) int8 array."""
    actions = np.zeros((count, ACTION_DIM), dtype=np.int8)
    sizes = rng.integers(RANDOM_POLICY_ACTS[0], RANDOM_POLICY_ACTS[1] + 1, size=count)
    for row, size in enumerate(sizes):
        actions[row, rng.choice(ACTION_DIM, size=size, replace=False)] = 1
    return actions


def random_driver(seed: int, steps: int) -> Driver:
    """The random policy with its actions drawn up front, so that only the environment is timed."""
    actions = iter(random_actions(np.random.default_rng(seed), steps))
    return lambda env: env.step(next(actions))


def rule_driver(env: DialogueEnv) -> tuple[Driver, Callable[[], None]]:
    policy = RulePolicy(env.world.db)
    return (lambda e: e.step_acts(policy.act(e.state, e.rng))), policy.reset


def run_steps(
    env: DialogueEnv, step: Driver, on_reset: Callable[[], None], steps: int, first_seed: int
) -> dict:
    """``steps`` steps through consecutive dialogue seeds, resets included in the timed loop."""
    seed, resets, rounds = first_seed, 0, 0
    started, cpu_started = time.perf_counter(), time.process_time()
    env.reset(seed=seed)
    on_reset()
    for _ in range(steps):
        _, _, terminated, truncated, _ = step(env)
        if terminated or truncated:
            rounds += env.rounds
            seed += 1
            resets += 1
            env.reset(seed=seed)
            on_reset()
    elapsed, cpu = time.perf_counter() - started, time.process_time() - cpu_started
    return {
        "steps": steps,
        "dialogues_finished": resets,
        "mean_rounds": round(rounds / max(resets, 1), 2),
        "seconds": round(elapsed, 3),
        "steps_per_s": round(steps / elapsed, 1),
        "us_per_step": round(1e6 * elapsed / steps, 1),
        "cpu_seconds": round(cpu, 3),
        "steps_per_cpu_s": round(steps / cpu, 1),
        "cpu_us_per_step": round(1e6 * cpu / steps, 1),
    }


def bench_single(policy: str, steps: int, data_dir: str | None, simulator: str = "agenda") -> dict:
    env = DialogueEnv(simulator=simulator, data_dir=data_dir)
    warm_up = min(steps, 500)
    if policy == "random":
        step, on_reset = random_driver(0, warm_up + steps), (lambda: None)
    else:
        step, on_reset = rule_driver(env)
    run_steps(env, step, on_reset, warm_up, first_seed=10**6)  # warm caches (memoised queries)
    result = run_steps(env, step, on_reset, steps, first_seed=0)
    return {
        "simulator": simulator,
        "policy": policy,
        **result,
        "speedup_vs_convlab2": round(result["steps_per_s"] / CONVLAB2_STEPS_PER_S),
    }


def bench_vector(workers: int, steps: int, data_dir: str | None) -> dict:
    """Random-policy steps summed over ``workers`` AsyncVectorEnv processes."""
    envs = gym.vector.AsyncVectorEnv([functools.partial(DialogueEnv, data_dir=data_dir)] * workers)
    try:
        rng = np.random.default_rng(workers)
        envs.reset(seed=list(range(workers)))
        for _ in range(max(200 // workers, 1)):
            envs.step(random_actions(rng, workers))
        iterations = max(steps // workers, 1)
        batches = [random_actions(rng, workers) for _ in range(iterations)]
        started = time.perf_counter()
        finished = 0
        for actions in batches:
            _, _, terminated, truncated, _ = envs.step(actions)
            finished += int(np.count_nonzero(terminated | truncated))
        elapsed = time.perf_counter() - started
    finally:
        envs.close()
    total = iterations * workers
    return {
        "workers": workers,
        "steps": total,
        "dialogues_finished": finished,
        "seconds": round(elapsed, 3),
        "steps_per_s": round(total / elapsed, 1),
        "steps_per_s_per_worker": round(total / elapsed / workers, 1),
    }


def _function_name(key: tuple[str, int, str]) -> str:
    filename, line, name = key
    if filename == "~":
        return name  # a builtin, e.g. "<method 'sample' of '_random.Random' objects>"
    path = Path(filename)
    parts = path.parts
    short = "/".join(parts[parts.index("envs") :]) if "envs" in parts else path.name
    return f"{short}:{line}({name})"


def profile(policy: str, steps: int, data_dir: str | None) -> dict:
    """cProfile of a single-process run; the top functions by cumulative time, as a table."""
    env = DialogueEnv(data_dir=data_dir)
    warm_up = min(steps, 500)
    step, on_reset = (
        (random_driver(1, warm_up + steps), (lambda: None)) if policy == "random" else rule_driver(env)
    )
    run_steps(env, step, on_reset, warm_up, first_seed=10**6)
    profiler = cProfile.Profile()
    profiler.enable()
    run_steps(env, step, on_reset, steps, first_seed=0)
    profiler.disable()
    stats = pstats.Stats(profiler)
    total = stats.total_tt
    rows = []
    ranked = sorted(stats.stats.items(), key=lambda item: item[1][3], reverse=True)
    for key, (_, ncalls, tottime, cumtime, _) in ranked:
        name = _function_name(key)
        if name.startswith(("benchmarks/", "bench_env.py", "<")) and "method" not in name:
            continue  # the benchmark's own loop and interpreter frames
        rows.append(
            {
                "function": name,
                "calls": ncalls,
                "tottime_s": round(tottime, 3),
                "cumtime_s": round(cumtime, 3),
                "cum_share": round(cumtime / total, 3),
            }
        )
        if len(rows) == PROFILE_ROWS:
            break
    return {"policy": policy, "steps": steps, "profiled_seconds": round(total, 3), "top_cumulative": rows}


def format_tables(results: dict) -> str:
    lines = [
        f"{'user':<7}{'policy':<8} {'steps':>7} {'steps/s':>9} {'µs/step':>8} {'steps/CPU-s':>11} "
        f"{'CPU µs/step':>11} {'rounds':>6} {'× ConvLab-2':>11}"
    ]
    for row in results["single_process"]:
        lines.append(
            f"{row['simulator']:<7}{row['policy']:<8} {row['steps']:>7} {row['steps_per_s']:>9.0f} "
            f"{row['us_per_step']:>8.0f} "
            f"{row['steps_per_cpu_s']:>11.0f} {row['cpu_us_per_step']:>11.0f} "
            f"{row['mean_rounds']:>6.2f} {row['speedup_vs_convlab2']:>11}"
        )
    lines.append("")
    lines.append(f"{'workers':>7} {'steps':>7} {'steps/s':>9} {'per worker':>10}")
    for row in results["async_vector_env"]:
        lines.append(
            f"{row['workers']:>7} {row['steps']:>7} {row['steps_per_s']:>9.0f} "
            f"{row['steps_per_s_per_worker']:>10.0f}"
        )
    for prof in results["profile"]:
        lines.append("")
        lines.append(
            f"profile, {prof['policy']} policy, {prof['steps']} steps "
            f"({prof['profiled_seconds']} s under cProfile): top functions by cumulative time"
        )
        lines.append(f"{'cum %':>6} {'cum s':>7} {'own s':>7} {'calls':>8}  function")
        for row in prof["top_cumulative"]:
            lines.append(
                f"{100 * row['cum_share']:>6.1f} {row['cumtime_s']:>7.2f} {row['tottime_s']:>7.2f} "
                f"{row['calls']:>8}  {row['function']}"
            )
    return "\n".join(lines)


def parse_workers(text: str) -> list[int]:
    try:
        workers = [int(part) for part in text.split(",")]
    except ValueError:
        workers = []
    if not workers or any(n < 1 for n in workers):
        raise argparse.ArgumentTypeError(
            f"{text!r}: expected positive worker counts separated by commas, e.g. 1,2"
        )
    return workers


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--steps", type=int, default=20000, help="steps per measurement")
    parser.add_argument("--workers", type=parse_workers, default=[1, 2], help="AsyncVectorEnv worker counts")
    parser.add_argument(
        "--profile-steps", type=int, default=5000, help="steps per profiled run (0: no profile)"
    )
    parser.add_argument("--vhus-steps", type=int, default=10000, help="steps against VHUS (0: none)")
    parser.add_argument("--out", type=Path, default=DEFAULT_OUT, help="where to write the JSON results")
    parser.add_argument("--data-dir", default=None, help="MultiWOZ data folder (default: resolved as usual)")
    args = parser.parse_args(argv)
    if args.steps < 1 or args.profile_steps < 0:
        parser.error("--steps must be positive and --profile-steps non-negative")
    try:
        build_world(args.data_dir)  # before forking workers, so they inherit it
    except mw_data.DataError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    random.seed(0)  # nothing should draw from the global stream; a fixed seed keeps any accident reproducible
    torch.set_num_threads(1)  # as in a training run (torch_threads=1)
    results: dict[str, Any] = {
        "python": sys.version.split()[0],
        "gymnasium": gym.__version__,
        "machine": platform.platform(),
        "cpu_count": os.cpu_count(),
        "load_average_before": [round(x, 2) for x in os.getloadavg()],
        "convlab2_steps_per_s": CONVLAB2_STEPS_PER_S,
        "target_steps_per_s": TARGET_STEPS_PER_S,
        "vhus_target_steps_per_s": VHUS_TARGET_STEPS_PER_S,
        "single_process": [
            *(bench_single(policy, args.steps, args.data_dir) for policy in ("random", "rule")),
            *(
                [bench_single("random", args.vhus_steps, args.data_dir, simulator="vhus")]
                if args.vhus_steps
                else []
            ),
        ],
        "async_vector_env": [bench_vector(n, args.steps, args.data_dir) for n in args.workers],
        "profile": (
            [profile(policy, args.profile_steps, args.data_dir) for policy in ("random", "rule")]
            if args.profile_steps
            else []
        ),
    }
    results["load_average_after"] = [round(x, 2) for x in os.getloadavg()]
    print(format_tables(results))
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(results, indent=2, ensure_ascii=False) + "\n")
    print(f"wrote {args.out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
