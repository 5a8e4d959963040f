"""Throughput of the epoch sampler (``vrb.sampling.EpochSampler``) against its number of worker processes.

Each measurement builds a sampler as the PPO family's learners do (``parallel=True``, ``workers`` = N), lets its
workers start, then times whole epochs: fresh seeded dialogues stepped by a multi-label policy into the rollout
buffer, exactly what a training epoch samples. The policy is a freshly initialised ``MultiLabelPolicy`` whose
output bias makes it say about two acts a turn (``decoder=expected``, as training samples), so that the
environments see dialogues like the random 1-3-act policy of ``bench_env.py``. Steps/s counts environment steps
(``steps_per_epoch`` per epoch); the first epoch after the start is a warm-up and is not timed.

Every worker count must fill the buffer with the same numbers: the JSON records a digest of each count's last
buffer, and the run fails if they differ. On a shared machine the load drifts between measurements, so each
count up to the CPU count is also measured *paired* (``paired``): a one-worker sampler and that count's sampler
alive together, their epochs alternated, the speed-up the ratio of their summed times.

On a machine with C cores, N > C workers share the cores (oversubscribed): their numbers say what the
overhead costs, not how the sampler scales. The JSON lists the counts that were measured oversubscribed. It also
records what the machine itself gives two processes (``machine_two_process_speedup``: two busy pure-Python loops
side by side against one alone; 2.0 on two free cores), the ceiling of any two-worker speed-up there.

    python benchmarks/bench_sampler.py                          # 1, 2, 4, 8, 16 workers, 64 environments
    python benchmarks/bench_sampler.py --workers 1,2 --epochs 5
"""

from __future__ import annotations

import argparse
import functools
import hashlib
import json
import multiprocessing
import os
import platform
import sys
import time
from pathlib import Path

import torch

from envs.multiwoz.vector import ACTION_DIM, STATE_DIM
from vrb.algorithms import make_config
from vrb.policy import MultiLabelPolicy
from vrb.sampling import EpochSampler
from vrb.workers import cpu_count

DEFAULT_OUT = Path(__file__).resolve().parent / "results" / "bench_sampler.json"
TARGETS = {
    "2": 1.7,
    "16": 12.0,
}  # the speed-up over one worker this project aims at (16: on a 16-core machine)
OUTPUT_BIAS = -4.6  # sigmoid(-4.6) = 0.01: about two of the 209 acts expected a turn


def policy_act() -> functools.partial:
    torch.manual_seed(0)
    policy = MultiLabelPolicy(STATE_DIM, ACTION_DIM)
    with torch.no_grad():
        policy.net[-1].bias.fill_(OUTPUT_BIAS)
    return functools.partial(policy.act, decoder="expected", fallback=True)


def digest(sampler: EpochSampler) -> str:
    buffer, h = sampler.buffer, hashlib.sha256()
    for name in ("states", "actions", "next_states", "log_probs", "rewards", "terminated", "truncated"):
        h.update(getattr(buffer, name).numpy().tobytes())
    return h.hexdigest()[:16]


def _busy(n: int) -> float:
    started, x = time.perf_counter(), 0
    for i in range(n):
        x += i * i
    return time.perf_counter() - started


def two_process_speedup(n: int = 5_000_000) -> float:
    """Work of two busy processes side by side over the same work done by one alone (the cores' real share)."""
    alone = min(_busy(n) for _ in range(2))
    with multiprocessing.get_context("spawn").Pool(2) as pool:
        together = max(pool.map(_busy, [n, n]))
    return round(2 * alone / together, 2)


def make_sampler(workers: int, num_envs: int, steps_per_epoch: int, simulator: str) -> EpochSampler:
    """A PPO learner's sampler (parallel) with this many workers."""
    cfg = make_config(
        algo="ppo",
        simulator=simulator,
        num_envs=num_envs,
        steps_per_epoch=steps_per_epoch,
        workers=workers,
        seed=0,
    )
    return EpochSampler(cfg, parallel=True)


def bench(workers: int, num_envs: int, steps_per_epoch: int, epochs: int, simulator: str) -> dict:
    act, generator = policy_act(), torch.Generator().manual_seed(0)
    started = time.perf_counter()
    sampler = make_sampler(workers, num_envs, steps_per_epoch, simulator)
    try:
        sampler.sample(act, 0, generator)  # warm-up: the workers' start and their first epoch
        warm_up = time.perf_counter() - started
        cpu, wall = time.process_time(), time.perf_counter()
        acts = dialogues = 0
        for epoch in range(1, epochs + 1):
            log, _ = sampler.sample(act, epoch, generator)
            acts += int(sampler.buffer.actions.sum())
            dialogues += len(log.metrics)
        wall, cpu = time.perf_counter() - wall, time.process_time() - cpu
        buffer_digest = digest(sampler)
    finally:
        sampler.close()
    steps = epochs * steps_per_epoch
    return {
        "workers": workers,
        "processes_started": sampler.workers - 1,
        "steps": steps,
        "dialogues_finished": dialogues,
        "acts_per_turn": round(acts / steps, 2),
        "seconds": round(wall, 3),
        "steps_per_s": round(steps / wall, 1),
        "main_process_cpu_share": round(cpu / wall, 2),
        "warm_up_seconds": round(warm_up, 2),
        "buffer_digest": buffer_digest,
    }


def paired_speedup(workers: int, num_envs: int, steps_per_epoch: int, epochs: int, simulator: str) -> dict:
    """One-worker and ``workers``-worker samplers alive side by side, their epochs alternated, so that both see
    the same moments of a shared machine: the ratio of their summed epoch times."""
    samplers, act, times = {}, policy_act(), {1: 0.0, workers: 0.0}
    try:
        for n in (1, workers):
            samplers[n] = make_sampler(n, num_envs, steps_per_epoch, simulator)
            samplers[n].sample(act, 0, torch.Generator())  # the workers' start
        for epoch in range(1, epochs + 1):
            for n in (1, workers) if epoch % 2 else (workers, 1):
                started = time.perf_counter()
                samplers[n].sample(act, epoch, torch.Generator().manual_seed(epoch))
                times[n] += time.perf_counter() - started
    finally:
        for sampler in samplers.values():
            sampler.close()
    return {
        "workers": workers,
        "epochs": epochs,
        "steps_per_s_one_worker": round(epochs * steps_per_epoch / times[1], 1),
        "steps_per_s": round(epochs * steps_per_epoch / times[workers], 1),
        "speedup": round(times[1] / times[workers], 2),
    }


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--workers", default="1,2,4,8,16", help="worker counts, comma-separated")
    parser.add_argument("--num-envs", type=int, default=64, help="4 per worker at 16 workers")
    parser.add_argument("--steps-per-epoch", type=int, default=4096)
    parser.add_argument("--epochs", type=int, default=4, help="timed epochs per worker count")
    parser.add_argument("--simulator", default="agenda")
    parser.add_argument("--out", type=Path, default=DEFAULT_OUT)
    args = parser.parse_args(argv)
    counts = [int(n) for n in args.workers.split(",")]
    torch.set_num_threads(1)  # as in a training run (torch_threads=1); workers are single-threaded too
    cpus = cpu_count()
    results = {
        "what": "vrb.sampling.EpochSampler, steps/s against worker processes (this process included)",
        "python": sys.version.split()[0],
        "torch": torch.__version__,
        "machine": platform.platform(),
        "cpu_count": cpus,
        "load_average_before": [round(x, 2) for x in os.getloadavg()],
        "machine_two_process_speedup": two_process_speedup(),
        "simulator": args.simulator,
        "num_envs": args.num_envs,
        "steps_per_epoch": args.steps_per_epoch,
        "runs": [bench(n, args.num_envs, args.steps_per_epoch, args.epochs, args.simulator) for n in counts],
    }
    results["load_average_after"] = [round(x, 2) for x in os.getloadavg()]
    base = next((r["steps_per_s"] for r in results["runs"] if r["workers"] == 1), None)
    for run in results["runs"]:
        run["speedup"] = round(run["steps_per_s"] / base, 2) if base else None
        run["oversubscribed"] = run["workers"] > cpus
    results["same_buffer_for_every_worker_count"] = len({r["buffer_digest"] for r in results["runs"]}) == 1
    results["paired"] = [
        paired_speedup(n, args.num_envs, args.steps_per_epoch, 2 * args.epochs, args.simulator)
        for n in counts
        if 1 < n <= cpus
    ]
    results["targets"] = {
        f"speedup_at_{n}_workers": {
            "target": target,
            "measured": next((r["speedup"] for r in results["runs"] if str(r["workers"]) == n), None),
            "measured_paired": next(
                (r["speedup"] for r in results["paired"] if str(r["workers"]) == n), None
            ),
            "measurable_here": int(n) <= cpus,
        }
        for n, target in TARGETS.items()
    }
    results["note"] = (
        f"measured on {cpus} CPUs: worker counts above {cpus} share the cores (oversubscribed), so their "
        f"speed-ups say nothing about a machine with that many cores; the 16-worker target (x12 on 16 cores) "
        f"needs a 16-core machine"
        if cpus < 16
        else "every worker count had a core of its own"
    )
    print(f"{'workers':>7} {'steps/s':>9} {'speed-up':>8} {'dialogues':>9} {'warm-up s':>9}  note")
    for run in results["runs"]:
        note = "oversubscribed" if run["oversubscribed"] else ""
        print(
            f"{run['workers']:>7} {run['steps_per_s']:>9.0f} {run['speedup'] or 0:>8.2f} "
            f"{run['dialogues_finished']:>9} {run['warm_up_seconds']:>9.1f}  {note}"
        )
    for run in results["paired"]:
        print(f"paired with one worker, epochs alternated: {run['workers']} workers x{run['speedup']}")
    print(results["note"])
    print(
        f"two busy processes side by side on this machine: x{results['machine_two_process_speedup']} of one"
    )
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(results, indent=2) + "\n")
    print(f"wrote {args.out}")
    if not results["same_buffer_for_every_worker_count"]:
        print("error: the worker counts sampled different buffers", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
