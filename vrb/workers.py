"""Sampling worker processes: an epoch's environments shared out in blocks, one message each way per epoch.

**Workers** (``TrainConfig.workers``; the PPO family's learners, ``EpochSampler(cfg, parallel=True)``): the
``num_envs`` dialogues of an epoch are split into ``workers`` contiguous blocks of environments (as even as
they go, the first blocks one larger: ``env_blocks``). This process steps the first block; each other block
belongs to a child process started once (multiprocessing's ``spawn`` context, single-threaded torch, the run's
``flush_denormal``), which owns its environments. Per epoch a child receives one message (the pickled ``act``,
i.e. a copy of the policy with its decoder, its block's dialogue seeds, the generator's state) and sends one
back (a ``vrb.rollout.Share``: its block's arrays, finished dialogues and the generator's final state); nothing
crosses between processes per step. Every process, this one included, steps its block with
``vrb.rollout.roll_out``, the loop the one-process path (``vrb.sampling.collect``, ``workers`` = 1: nothing is
started) runs on all environments; ``RolloutBuffer.fill`` writes the shares in.

**Determinism rule**: an epoch's buffer and ``EpisodeLog`` are the same whatever the worker count.

* Environment ``i`` always starts the epoch's dialogue seed ``i`` (``epoch_seeds``), and a dialogue that ends
  restarts from that environment's own generator, so an environment's dialogues depend on its seed and on the
  acts it is sent, never on the other environments or on which process steps it.
* The acts come from ``act(states, generator, rows=...)`` on the whole ``[num_envs, 340]`` batch, as in one
  process: every process runs the network on the full batch at every step, its own environments' states in
  their rows and zeros elsewhere, with its own copy of the run's generator (started from the same state), and
  decodes its own rows. So a network's rows are computed from the same batch shape (checked: they are not
  bit-identical across batch sizes), every process makes exactly the draws the single process makes (e.g.
  ``decoder=sample``'s one Bernoulli per act of every row, in row order) and each row sees the numbers it would
  see there. This needs an ``act`` whose row ``i`` depends only on row ``i`` of the states and whose draws
  depend only on the batch's shape — true of ``MultiLabelPolicy.act`` with every decoder. After the epoch every
  copy of the generator is in the same state, which the run's generator takes (a mismatch raises).
* Finished dialogues are logged in the order one process meets them: by step, then by environment index.

The cost is the network's forward pass on ``num_envs`` rows in every process at every step (for 8 rows, small
beside the environments' steps; decoding, the larger part of an act, is done for the process's own rows only).
Workers sample on the CPU; a run on a CUDA device samples in this process.
"""

from __future__ import annotations

import contextlib
import multiprocessing
import os
import pickle
import time
import traceback
import weakref
from collections.abc import Iterator
from typing import Any

import torch

from vrb.config import TrainConfig
from vrb.dialogue_vector import make_vector_env
from vrb.rollout import Share, roll_out

MAX_AUTO_WORKERS = 8  # workers = 0 takes min(CPUs, num_envs, this)
# The variables that size a child's BLAS and OpenMP thread pools: read once, when the child imports numpy/torch.
THREAD_VARIABLES = ("OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS")
WORKER_JOIN_S = 10.0  # how long close() waits for a worker to exit before terminating it


@contextlib.contextmanager
def limited_threads(threads: int) -> Iterator[None]:
    """Processes started inside the block size their BLAS/OpenMP pools to ``threads`` (variables the user set
    are kept). Without it a child's numpy (VHUS's matrix-vector products) threads over every core and many such
    children crawl on a busy machine."""
    saved = {name: os.environ.get(name) for name in THREAD_VARIABLES}
    os.environ.update({name: str(threads) for name in THREAD_VARIABLES if not saved[name]})
    try:
        yield
    finally:
        for name, value in saved.items():
            if value is None:
                os.environ.pop(name, None)
            else:
                os.environ[name] = value


def cpu_count() -> int:
    """CPUs this process may run on (its affinity where the platform says, else the machine's)."""
    try:
        return len(os.sched_getaffinity(0))
    except AttributeError:  # not on Linux
        return os.cpu_count() or 1


def worker_count(cfg: TrainConfig) -> int:
    """Processes that sample (this one included): ``workers``, 0 meaning min(CPUs, num_envs, 8); never more
    than ``num_envs``; 1 on a CUDA device (workers sample on the CPU)."""
    if cfg.device != "cpu":
        return 1
    wanted = cfg.workers or min(cpu_count(), MAX_AUTO_WORKERS)
    return max(1, min(wanted, cfg.num_envs))


def env_blocks(num_envs: int, workers: int) -> list[tuple[int, int]]:
    """``[start, stop)`` of each worker's environments: contiguous, in order, sizes differing by at most one."""
    size, extra = divmod(num_envs, workers)
    blocks, start = [], 0
    for w in range(workers):
        stop = start + size + (w < extra)
        blocks.append((start, stop))
        start = stop
    return blocks


def _worker_main(conn: Any, spec: dict[str, Any]) -> None:
    """A worker's loop: its environments, then one ``collect`` request (``roll_out`` on its block) after another
    until ``close`` or the parent's end of the pipe closes (the parent exited or died)."""
    try:
        torch.set_num_threads(1)
        torch.set_flush_denormal(spec["flush_denormal"])
        vec_env = make_vector_env(
            spec["simulator"],
            spec["num_envs"],
            reward_mode=spec["reward_mode"],
            data_dir=spec["data_dir"],
            user_noise=spec["user_noise"],
        )
        conn.send_bytes(pickle.dumps(("ready", None)))
    except BaseException:
        conn.send_bytes(pickle.dumps(("error", traceback.format_exc())))
        return
    generator = torch.Generator()
    while True:
        try:
            message = pickle.loads(conn.recv_bytes())
        except (EOFError, OSError, KeyboardInterrupt):
            break
        if message[0] == "close":
            break
        try:
            _, act_bytes, seeds, start, num_envs, steps, generator_state = message
            generator.set_state(generator_state)
            act = pickle.loads(act_bytes)
            share = roll_out(vec_env, act, seeds, steps, generator, start=start, num_envs=num_envs)
            reply = pickle.dumps(("ok", share), protocol=pickle.HIGHEST_PROTOCOL)
        except BaseException:
            reply = pickle.dumps(("error", traceback.format_exc()))
        try:
            conn.send_bytes(reply)
        except (BrokenPipeError, OSError):
            break
    vec_env.close()


class SamplerError(RuntimeError):
    """A sampling worker failed or died."""


def _stop_workers(processes: list[Any], connections: list[Any]) -> None:
    for conn in connections:
        with contextlib.suppress(BrokenPipeError, OSError):  # a worker that died has closed its end
            conn.send_bytes(pickle.dumps(("close",)))
    deadline = time.monotonic() + WORKER_JOIN_S
    for process in processes:
        process.join(max(0.0, deadline - time.monotonic()))
        if process.is_alive():
            process.terminate()
            process.join(1.0)
    for conn in connections:
        conn.close()


class WorkerPool:
    """The child processes of a parallel ``EpochSampler``: block ``i + 1`` of ``env_blocks`` each."""

    def __init__(self, cfg: TrainConfig, blocks: list[tuple[int, int]]):
        self.blocks = blocks
        context = multiprocessing.get_context("spawn")
        self.processes: list[Any] = []
        self.connections: list[Any] = []
        with limited_threads(1):  # a worker is one core's worth of work
            for index, (start, stop) in enumerate(blocks, start=1):
                parent_end, child_end = context.Pipe()
                spec = {
                    "simulator": cfg.simulator,
                    "num_envs": stop - start,
                    "reward_mode": cfg.env_reward,
                    "data_dir": None if cfg.data_dir is None else str(cfg.data_dir),
                    "user_noise": cfg.user_noise,
                    "flush_denormal": cfg.flush_denormal,
                }
                process = context.Process(
                    target=_worker_main, args=(child_end, spec), name=f"vrb-sampler-{index}", daemon=True
                )
                process.start()
                child_end.close()
                self.processes.append(process)
                self.connections.append(parent_end)
        # stopped when the pool is garbage-collected or the interpreter exits, if close() was not called
        self._finalizer = weakref.finalize(self, _stop_workers, self.processes, self.connections)
        self._ready = False

    def _receive(self, index: int) -> Any:
        try:
            kind, payload = pickle.loads(self.connections[index].recv_bytes())
        except (EOFError, OSError) as exc:
            process = self.processes[index]
            process.join(1.0)
            raise SamplerError(f"sampling worker {process.name} died (exit code {process.exitcode})") from exc
        if kind == "error":
            raise SamplerError(f"sampling worker {self.processes[index].name} failed:\n{payload}")
        return payload

    def wait_ready(self) -> None:
        if not self._ready:
            for index in range(len(self.processes)):
                self._receive(index)
            self._ready = True

    def send(
        self, act_bytes: bytes, seeds: list[int], num_envs: int, steps: int, state: torch.Tensor
    ) -> None:
        for conn, process, (start, stop) in zip(self.connections, self.processes, self.blocks, strict=True):
            message = ("collect", act_bytes, seeds[start:stop], start, num_envs, steps, state)
            try:
                conn.send_bytes(pickle.dumps(message, protocol=pickle.HIGHEST_PROTOCOL))
            except (BrokenPipeError, OSError) as exc:
                raise SamplerError(f"sampling worker {process.name} is gone ({exc})") from exc

    def receive(self) -> list[Share]:
        return [self._receive(index) for index in range(len(self.processes))]

    def close(self) -> None:
        self._finalizer()
