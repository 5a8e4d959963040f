"""An epoch's rollouts: a run's vector of dialogues stepped by its policy into its RolloutBuffer, in this process
or shared out to worker processes.

Both paths run the one loop of ``vrb.rollout`` (``roll_out``: all environments here, a block per worker) and
write its ``Share``s in with ``RolloutBuffer.fill``; this module only decides the seeds, who steps which block,
and what gets logged.

Every epoch starts fresh dialogues whose seeds derive from (run seed, epoch), so an epoch's data depends only on
the policy, the run's generator and those numbers: a resumed run samples exactly what the uninterrupted one
would have.

Worker processes (``TrainConfig.workers``) share an epoch out: ``vrb.workers`` says how, and why the
samples are the same whatever their number.
"""

from __future__ import annotations

import pickle
import time
from dataclasses import dataclass, field

import numpy as np
import torch

from envs.multiwoz.evaluator import DialogueMetrics
from envs.multiwoz.vector import ACTION_DIM, STATE_DIM
from vrb.config import TrainConfig
from vrb.dialogue_vector import ActFn, DialogueVector, VectorStep, make_vector_env
from vrb.rollout import RolloutBuffer, Share, roll_out
from vrb.workers import SamplerError, WorkerPool, env_blocks, worker_count

__all__ = [
    "ActFn",
    "DialogueVector",
    "EpisodeLog",
    "EpochSampler",
    "SamplerError",
    "VectorStep",
    "collect",
    "epoch_seeds",
    "make_vector_env",
]

SEED_STRIDE = 1_000_003  # dialogue-seed blocks of different (run, epoch) pairs never overlap in practice


def epoch_seeds(run_seed: int, epoch: int, num_envs: int) -> list[int]:
    base = (run_seed * 10_007 + epoch) * SEED_STRIDE % (2**31 - num_envs)
    return [base + i for i in range(num_envs)]


@dataclass
class EpisodeLog:
    """What the dialogues finished during one collection looked like (for logging, not learning)."""

    metrics: list[DialogueMetrics] = field(default_factory=list)
    eval_returns: list[float] = field(default_factory=list)

    @classmethod
    def of(cls, shares: list[Share]) -> EpisodeLog:
        """The dialogues the shares finished, in the order one process meets them: by step, then environment."""
        finished = sorted((item for share in shares for item in share.finished), key=lambda item: item[:2])
        return cls([item[2] for item in finished], [item[3] for item in finished])

    def summary(self) -> dict[str, float]:
        if not self.metrics:
            return {"dialogues": 0.0}
        mean = lambda key: float(np.mean([getattr(m, key) for m in self.metrics]))  # noqa: E731
        return {
            "dialogues": float(len(self.metrics)),
            "success": mean("success"),
            "paper_success": mean("paper_success"),
            "rounds": mean("rounds"),
            "eval_return": float(np.mean(self.eval_returns)),
        }


def collect(
    vec_env: DialogueVector,
    act: ActFn,
    buffer: RolloutBuffer,
    seeds: list[int],
    generator: torch.Generator,
) -> EpisodeLog:
    """Fill ``buffer`` with fresh dialogues started from ``seeds``, acting by ``act`` (a policy's ``act`` with
    its decoder bound) on the buffer's device: ``roll_out`` on every environment."""
    share = roll_out(vec_env, act, seeds, buffer.num_steps, generator, device=buffer.device)
    buffer.fill([share])
    return EpisodeLog.of([share])


class EpochSampler:
    """A run's dialogues and its epoch buffer: each epoch fills the buffer with fresh dialogues seeded by
    (run seed, epoch), stepped by the learner's ``act``.

    ``parallel``: a multi-label policy's ``act`` (picklable, row-wise; ``vrb.workers``' rule) may be
    shared out to ``worker_count(cfg)`` processes; otherwise, or with one worker, sampling stays in this process.
    Worker processes start at the first collection and stop at ``close`` (or when this process exits). When a
    worker fails, its error is raised and the sampler goes on in this process (the same samples, one process).
    """

    def __init__(self, cfg: TrainConfig, parallel: bool = False):
        self.cfg = cfg
        self.vec_env = make_vector_env(
            cfg.simulator,
            cfg.num_envs,
            reward_mode=cfg.env_reward,
            data_dir=cfg.data_dir,
            user_noise=cfg.user_noise,
        )
        self.buffer = RolloutBuffer(cfg.steps_per_env, cfg.num_envs, STATE_DIM, ACTION_DIM, cfg.device)
        self.workers = worker_count(cfg) if parallel else 1
        blocks = env_blocks(cfg.num_envs, self.workers)
        self.own, self.other_blocks = blocks[0], blocks[1:]  # this process steps the first block
        self.own_envs = DialogueVector(self.vec_env.envs[slice(*self.own)])
        self.pool: WorkerPool | None = None  # started by the first collection

    def collect(self, act: ActFn, seeds: list[int], generator: torch.Generator) -> EpisodeLog:
        """Fresh dialogues from ``seeds`` (one per environment) into ``buffer``, acting by ``act``."""
        if self.workers == 1:
            return collect(self.vec_env, act, self.buffer, seeds, generator)
        num_envs, steps = self.cfg.num_envs, self.buffer.num_steps
        try:
            if self.pool is None:
                self.pool = WorkerPool(self.cfg, self.other_blocks)
            self.pool.wait_ready()
            self.pool.send(pickle.dumps(act), seeds, num_envs, steps, generator.get_state())
            own_seeds = seeds[slice(*self.own)]
            own = roll_out(
                self.own_envs, act, own_seeds, steps, generator, start=self.own[0], num_envs=num_envs
            )
            shares = [own, *self.pool.receive()]
        except BaseException:
            self.close_workers()
            self.workers = 1
            raise
        if any(not torch.equal(share.generator_state, own.generator_state) for share in shares):
            raise SamplerError(
                "sampling workers' generators disagree after the epoch: the act function draws "
                "depending on its rows' values, which workers cannot reproduce (use workers=1)"
            )
        self.buffer.fill(shares)
        return EpisodeLog.of(shares)

    def sample(
        self, act: ActFn, epoch: int, generator: torch.Generator
    ) -> tuple[EpisodeLog, dict[str, float]]:
        """The epoch's dialogues into ``buffer``; their log and the ``perf/`` sampling rate."""
        started = time.perf_counter()
        log = self.collect(act, epoch_seeds(self.cfg.seed, epoch, self.cfg.num_envs), generator)
        return log, {"sampling_steps_per_s": self.cfg.steps_per_epoch / (time.perf_counter() - started)}

    def close_workers(self) -> None:
        if self.pool is not None:
            self.pool.close()
            self.pool = None

    def close(self) -> None:
        self.close_workers()
        self.vec_env.close()
