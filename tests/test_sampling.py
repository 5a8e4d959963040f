"""The epoch sampler: the same seed gives the same epoch whatever the worker count (vrb.sampling's rule)."""

import functools
import os
import signal
import subprocess
import sys
import time

import pytest
import torch

from envs.multiwoz.vector import ACTION_DIM, STATE_DIM
from vrb.algorithms import make_config
from vrb.policy import MultiLabelPolicy
from vrb.sampling import EpochSampler
from vrb.workers import SamplerError, env_blocks, worker_count

BUFFER_FIELDS = ("states", "actions", "next_states", "log_probs", "rewards", "terminated", "truncated")


def policy_act(decoder: str):
    torch.manual_seed(7)
    policy = MultiLabelPolicy(STATE_DIM, ACTION_DIM)
    with torch.no_grad():
        policy.net[-1].bias.fill_(-3.0)  # a few acts a turn, so that dialogues end inside the epoch
    return functools.partial(policy.act, decoder=decoder, fallback=True)


def sample_epochs(workers: int, decoder: str, epochs=(0, 1), **fields):
    cfg = make_config(algo="ppo", num_envs=4, steps_per_epoch=4 * 30, workers=workers, seed=5, **fields)
    sampler = EpochSampler(cfg, parallel=True)
    generator = torch.Generator().manual_seed(11)
    act, results = policy_act(decoder), []
    try:
        for epoch in epochs:
            log, _ = sampler.sample(act, epoch, generator)
            buffer = {name: getattr(sampler.buffer, name).clone() for name in BUFFER_FIELDS}
            results.append((buffer, log, generator.get_state()))
    finally:
        sampler.close()
    return results


@pytest.mark.slow
@pytest.mark.parametrize("decoder", ["expected", "sample", "greedy"])
def test_an_epoch_is_the_same_whatever_the_worker_count(decoder):
    one = sample_epochs(1, decoder)
    assert sum(len(log.metrics) for _, log, _ in one) > 0  # dialogues ended: the log is compared too
    for workers in (2, 3):
        for (buffer, log, state), (buffer_1, log_1, state_1) in zip(
            sample_epochs(workers, decoder), one, strict=True
        ):
            for name in BUFFER_FIELDS:
                assert torch.equal(buffer[name], buffer_1[name]), (workers, name)
            assert log.metrics == log_1.metrics and log.eval_returns == log_1.eval_returns
            assert torch.equal(state, state_1)  # the run's generator continues from the same state


@pytest.mark.slow
def test_one_worker_starts_no_process_and_close_stops_the_workers():
    cfg = make_config(algo="ppo", num_envs=4, steps_per_epoch=8, workers=1)
    act, generator = policy_act("expected"), torch.Generator()
    for sampler in (EpochSampler(cfg, parallel=True), EpochSampler(cfg.replace(workers=3))):
        sampler.sample(act, 0, generator)  # one worker, or not a parallel learner: this process only
        assert sampler.workers == 1 and sampler.pool is None
        sampler.close()
    sampler = EpochSampler(cfg.replace(workers=3), parallel=True)
    assert sampler.pool is None  # nothing starts before the first collection
    sampler.sample(act, 0, generator)
    processes = list(sampler.pool.processes)
    assert len(processes) == 2 and all(p.is_alive() for p in processes)  # this process steps the first block
    sampler.close()
    assert sampler.pool is None and not any(p.is_alive() for p in processes)


@pytest.mark.slow
def test_workers_leave_when_the_parent_end_of_their_pipe_closes():
    """What a worker sees when the run's process dies (kill -9 included): its pipe closes, and it exits."""
    sampler = EpochSampler(make_config(algo="ppo", num_envs=2, steps_per_epoch=4, workers=2), parallel=True)
    act, generator = policy_act("expected"), torch.Generator()
    sampler.sample(act, 0, generator)
    process = sampler.pool.processes[0]
    sampler.pool.connections[0].close()
    process.join(30)
    assert not process.is_alive() and process.exitcode == 0
    with pytest.raises(SamplerError):
        sampler.sample(act, 1, generator)
    assert sampler.pool is None and sampler.workers == 1  # stopped; the sampler goes on in this process
    log, _ = sampler.sample(act, 1, generator)
    sampler.close()


def test_worker_counts_and_blocks():
    cfg = make_config(algo="ppo", num_envs=8, steps_per_epoch=64)
    assert worker_count(cfg.replace(workers=1)) == 1
    assert worker_count(cfg.replace(workers=32)) == 8  # never more than num_envs
    auto = worker_count(cfg)
    assert 1 <= auto <= min(8, os.cpu_count() or 1)
    assert env_blocks(8, 3) == [(0, 3), (3, 6), (6, 8)]
    assert env_blocks(4, 4) == [(0, 1), (1, 2), (2, 3), (3, 4)]


KILLED_PARENT = """
import time, torch
from tests.test_sampling import policy_act
from vrb.algorithms import make_config
from vrb.sampling import EpochSampler

if __name__ == "__main__":  # spawned workers import this file too
    sampler = EpochSampler(make_config(algo="ppo", num_envs=3, steps_per_epoch=6, workers=3), parallel=True)
    sampler.sample(policy_act("expected"), 0, torch.Generator())
    print(" ".join(str(p.pid) for p in sampler.pool.processes), flush=True)
    time.sleep(600)
"""


@pytest.mark.slow
def test_workers_exit_when_the_run_is_killed(tmp_path):
    script = tmp_path / "parent.py"
    script.write_text(KILLED_PARENT)
    root = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
    parent = subprocess.Popen(
        [sys.executable, str(script)],
        stdout=subprocess.PIPE,
        text=True,
        cwd=root,
        env={**os.environ, "PYTHONPATH": root},
    )
    try:
        pids = [int(pid) for pid in parent.stdout.readline().split()]
        assert len(pids) == 2
    finally:
        parent.send_signal(signal.SIGKILL)
        parent.wait()
    deadline = time.time() + 30
    while time.time() < deadline and any(_alive(pid) for pid in pids):
        time.sleep(0.1)
    assert not any(_alive(pid) for pid in pids)


def _alive(pid: int) -> bool:
    """Running (a zombie waiting for its reaper counts as gone)."""
    try:
        with open(f"/proc/{pid}/stat") as stat:
            return stat.read().rsplit(")", 1)[1].split()[0] != "Z"
    except FileNotFoundError:
        return False


def test_children_started_in_limited_threads_get_that_many_blas_threads(monkeypatch):
    from vrb.workers import THREAD_VARIABLES, limited_threads

    monkeypatch.delenv("OMP_NUM_THREADS", raising=False)
    monkeypatch.setenv("MKL_NUM_THREADS", "5")  # the user's setting is kept
    with limited_threads(3):
        assert os.environ["OMP_NUM_THREADS"] == "3" and os.environ["MKL_NUM_THREADS"] == "5"
    assert "OMP_NUM_THREADS" not in os.environ and os.environ["MKL_NUM_THREADS"] == "5"
    assert "OPENBLAS_NUM_THREADS" in THREAD_VARIABLES
