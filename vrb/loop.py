"""What an algorithm provides to a run (``Learner``), what a run gives it (``RunContext``), and the bookkeeping
every run shares (``RunTracker``). ``vrb.train.run`` ties them together; an algorithm's file holds only its own
learning, read top to bottom like its algorithm box.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Protocol

import torch
from tqdm import tqdm

from envs.dialogue_env import DialogueEnv
from envs.fileio import write_json
from envs.multiwoz.data import MultiWozData
from vrb.acting import Agent, run_dialogues
from vrb.checkpoint import save_checkpoint
from vrb.config import TrainConfig
from vrb.expert import ExpertData
from vrb.logger import RunLogger

logger = logging.getLogger(__name__)

VALIDATION_SEED_BASE = 1_000_000  # validation dialogues never share seeds with vrb.evaluate's defaults
VALIDATION_WIDTH = 8  # validation dialogues played side by side (one policy forward pass for all)
Panels = dict[str, dict[str, float]]  # TensorBoard panel -> scalars


@dataclass
class RunContext:
    """What a run hands its learner: the config, the data, expert transitions and the run's generator."""

    cfg: TrainConfig
    out: Path
    data: MultiWozData
    expert: ExpertData  # the training split (val when the folder has no train split)
    test: ExpertData  # held out: scored, never trained on
    generator: torch.Generator  # every draw of the run comes from it (saved in checkpoints)
    tb: RunLogger


class Learner(Protocol):
    """One algorithm's side of a run: ``vrb.train.run`` owns the progress bar, validation, checkpoints, resume,
    TensorBoard and ``results.json``.

    ``agent`` acts with the current policy (validation). ``start`` runs once on a fresh run (a warm start such as
    behaviour cloning) and returns entries for ``results.json``; a ``"mle"`` entry makes the run keep the cloned
    policy as ``mle.pt``. ``learn_epoch`` is one epoch and returns TensorBoard panels; an offline learner
    (``online = False``) has no epochs. ``state_dict`` is what a checkpoint must hold to resume bit for bit.
    """

    online: bool
    agent: Agent

    def start(self) -> dict[str, Any]: ...

    def learn_epoch(self, epoch: int) -> Panels: ...

    def state_dict(self) -> dict[str, Any]: ...

    def load_state_dict(self, state: dict[str, Any]) -> None: ...

    def close(self) -> None: ...


def device_free(state: Any) -> Any:
    """A learner's state with every tensor on the CPU (dicts, lists and tuples walked), so that a checkpoint of
    a CUDA run loads on a machine without one; on a CPU run the very same tensors."""
    if isinstance(state, torch.Tensor):
        return state.cpu()
    if isinstance(state, dict):
        return {key: device_free(value) for key, value in state.items()}
    if isinstance(state, list):
        return [device_free(value) for value in state]
    if isinstance(state, tuple):
        return tuple(device_free(value) for value in state)
    return state


def validate(agent: Agent, envs: list[DialogueEnv], dialogues: int) -> dict[str, Any]:
    """The agent on the fixed validation dialogues (model selection never sees vrb.evaluate's seeds)."""
    seeds = range(VALIDATION_SEED_BASE, VALIDATION_SEED_BASE + dialogues)
    return run_dialogues(agent, envs, seeds).summary


HEADLINE_KEYS = ("paper_success", "paper_inform_f1", "paper_match", "paper_turns")  # the tables' columns


def headline(scores: dict[str, Any]) -> str:
    """Success, inform F1, match and turns under the papers' definitions, named as in ``results.json``,
    TensorBoard (``eval/``) and the reports (docs/metrics.md)."""
    return ", ".join(
        f"{key} {scores.get(key) or 0.0:.{2 if key == 'paper_turns' else 3}f}" for key in HEADLINE_KEYS
    )


class RunTracker:
    """Bookkeeping of every run: the progress bar, ``perf/`` scalars, validation every ``eval_every`` epochs,
    ``best.pt`` on a new best of the validation metric ``select_metric``, ``last.pt`` every epoch, the patience
    stop (``stop``), and at the end HParams and ``results.json``.

    Epochs are counted as the log, ``results.json``, TensorBoard and the reports count them: epoch N is the
    policy after N epochs of learning, epoch 0 the starting policy. On a terminal progress is a redrawn bar;
    in a file (stderr not a terminal) it is one plain line per validation."""

    def __init__(
        self,
        ctx: RunContext,
        agent: Agent,
        learner_state: Callable[[], dict[str, Any]],
        checksums: dict[str, str],
        best: dict[str, Any],
        record: dict[str, Any],
    ):
        cfg = ctx.cfg
        self.cfg, self.out, self.tb, self.agent = cfg, ctx.out, ctx.tb, agent
        self.learner_state, self.rngs, self.checksums = learner_state, {"torch": ctx.generator}, checksums
        self.best, self.record = best, record
        self.metric = cfg.select_metric
        self.stop = False
        self.eval_envs = [
            DialogueEnv(simulator=cfg.simulator, data_dir=cfg.data_dir, user_noise=cfg.user_noise)
            for _ in range(VALIDATION_WIDTH)
        ]
        # The scores of the last validation while the policy is still the one it scored (None once an epoch
        # has learned since): ``finish`` reuses them instead of replaying the same dialogues with the same
        # policy. A validation depends only on the policy and the fixed seeds, so they are what it would get.
        self.latest: dict[str, Any] | None = None

    def _validate(self) -> dict[str, Any]:
        """The agent on the validation dialogues, remembered as ``latest``."""
        self.latest = validate(self.agent, self.eval_envs, self.cfg.eval_dialogues)
        return self.latest

    def _score(self, scores: dict[str, Any]) -> float:
        value = scores.get(self.metric)
        return -1.0 if value is None else float(value)

    def save(self, name: str, epoch: int) -> None:
        state = device_free(self.learner_state()) | {"best": self.best, "record": self.record}
        save_checkpoint(
            self.out / name,
            config=self.cfg,
            epoch=epoch,
            state=state,
            rngs=self.rngs,
            data_checksums=self.checksums,
        )

    def start(self) -> None:
        """Score the starting policy; it is the first best."""
        self.best = {"epoch": 0, **self._validate()}
        self.record["start"] = self.best
        self.tb.validation(self.best, 0, 0)
        self.tb.scalars("best", {key: self.best.get(key) for key in HEADLINE_KEYS}, 0)
        logger.info("start policy: validation %s", headline(self.best))
        self.save("best.pt", -1)

    def epochs(self, start_epoch: int) -> tqdm:
        self.started = time.perf_counter()
        self.progress = tqdm(
            range(start_epoch, self.cfg.epochs),
            desc=f"{self.cfg.algo} on {self.cfg.simulator}",
            initial=start_epoch,
            total=self.cfg.epochs,
            disable=None,  # no bar where stderr is not a terminal: plain lines instead (end_epoch)
        )
        return self.progress

    def end_epoch(self, epoch: int, started: float, panels: dict[str, dict[str, float]]) -> None:
        """Log the epoch's panels (with its rate), validate when due, and write the checkpoints."""
        cfg, step = self.cfg, epoch + 1
        self.latest = None  # the epoch has learned: the policy is no longer the one last validated
        panels.setdefault("perf", {})["steps_per_s"] = cfg.steps_per_epoch / (time.perf_counter() - started)
        for panel, scalars in panels.items():
            self.tb.scalars(panel, scalars, step)
        if step % cfg.eval_every == 0 or step == cfg.epochs:
            scores = self._validate()
            self.tb.validation(scores, step, step * cfg.steps_per_epoch)
            if self._score(scores) > self._score(self.best):
                self.best = {"epoch": step, **scores}
                self.save("best.pt", epoch)
            elif cfg.patience and (step - self.best["epoch"]) >= cfg.patience * cfg.eval_every:
                self.stop = True
            self.tb.scalars("best", {key: self.best.get(key) for key in HEADLINE_KEYS}, step)
            self.progress.set_postfix(
                {self.metric: f"{self._score(scores):.3f}", "best": f"{self._score(self.best):.3f}"}
            )
            if self.progress.disable:
                logger.info(
                    "epoch %d/%d: %s; best %s %.3f (epoch %d); %.0f s",
                    step,
                    cfg.epochs,
                    headline(scores),
                    self.metric,
                    self._score(self.best),
                    self.best["epoch"],
                    time.perf_counter() - self.started,
                )
        self.save("last.pt", epoch)

    def finish(self) -> dict[str, Any]:
        self.record["best"] = self.best
        # the policy last validated is the final one (the last epoch always validates, a patience stop follows a
        # validation, an offline learner has only its start): its scores, not the same dialogues replayed
        self.record["final"] = self.latest if self.latest is not None else self._validate()
        self.tb.hparams(self.cfg.hparams(), [f"best/{key}" for key in HEADLINE_KEYS])
        self.tb.close()
        results = self.out / "results.json"
        write_json(results, self.record)
        logger.info(
            "best validation (epoch %d, by %s): %s; final: %s; results in %s",
            self.best["epoch"],
            self.metric,
            headline(self.best),
            headline(self.record["final"]),
            results,
        )
        return self.record
