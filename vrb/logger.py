"""TensorBoard output of a run, laid out for reading it.

The *Custom Scalars* tab opens on the headline row — validation success, inform F1, match and turns under the
papers' definitions — then the policy's behaviour, the learned reward's diagnostics, and the headline again
against environment steps (turns) instead of epochs; one line a chart. The *Scalars* tab holds every panel:
``eval/`` (validation, both metric definitions), ``best/`` (the best validation so far: what ``best.pt`` scores,
and HParams' metrics), ``rollout/``, ``ppo/``, ``estimator/``, ``diagnostics/``, ``perf/``. Behaviour cloning
and estimator pretraining happen before the first epoch, so they are logged as a run of their own (``RUN/mle``)
with their own step axis; so is the headline by environment steps (``RUN/env_steps``). HParams are written into
the run itself, with only the run's own fields.

A resumed run drops what the run before it logged after its ``last.pt`` (TensorBoard's purge: every point at or
after a step), on each axis in that axis's own unit: epochs in ``RUN``, environment steps in ``RUN/env_steps``
(one purge in epochs on a folder holding both axes would take every earlier point of the environment-steps one).
"""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path
from typing import Any, cast

from torch.utils.tensorboard import SummaryWriter
from torch.utils.tensorboard.summary import hparams as hparams_summary
from torch.utils.tensorboard.writer import FileWriter

HEADLINE = {
    "success": "paper_success",
    "inform F1": "paper_inform_f1",
    "match": "paper_match",
    "turns": "paper_turns",
}
BOOKKEEPING = ("dialogues", "epoch")  # constant or redundant in a validation record: no card
WARM_START_PANELS = ("mle", "estimator_pretrain")  # logged before epoch 1, on their own step axis
ENV_STEPS_PANEL, ENV_STEPS_RUN = "eval_by_env_steps", "env_steps"  # the headline against environment steps


def _chart(*tags: str) -> list:
    return ["Multiline", list(tags)]


LAYOUT = {
    "validation (papers' definitions)": {title: _chart(f"eval/{key}") for title, key in HEADLINE.items()},
    "best so far (by the run's select_metric)": {
        title: _chart(f"best/{key}") for title, key in HEADLINE.items()
    },
    "behaviour": {
        "acts per turn in validation (the run's decoder)": _chart("eval/acts_per_turn"),
        "acts per turn at the epoch's states (greedy)": _chart("diagnostics/greedy_acts_per_turn"),
        "empty turns (before the fallback)": _chart("diagnostics/empty_greedy_rate"),
        "entropy (nats over 209 acts)": _chart("diagnostics/entropy"),
        "rollout success": _chart("rollout/paper_success"),
    },
    "learned reward": {
        "f on expert transitions": _chart("diagnostics/f_expert"),
        "f on policy transitions": _chart("diagnostics/f_policy"),
        "KL of the bottleneck (held under I_c)": _chart("diagnostics/kl"),
        "I_c": _chart("diagnostics/ic"),
        "phi": _chart("diagnostics/phi"),
        "state-only probe AUC": _chart("diagnostics/probe_auc"),
        "share of the reward from -c log pi": _chart("diagnostics/reward_logpi_share"),
    },
    "validation by environment steps": {
        title: _chart(f"eval_by_env_steps/{key}") for title, key in HEADLINE.items()
    },
}


class RunLogger:
    def __init__(self, log_dir: str | Path, purge_step: int | None = None):
        """``purge_step``: a resumed run's first epoch step (what was logged from it on is dropped)."""
        self.log_dir = Path(log_dir)
        self.purge_step = purge_step
        self.writer = SummaryWriter(str(log_dir), purge_step=purge_step)
        self.writer.add_custom_scalars(LAYOUT)
        self._warm_start: SummaryWriter | None = None
        self._env_steps: SummaryWriter | None = None

    def _writer(self, panel: str) -> SummaryWriter:
        if panel not in WARM_START_PANELS:
            return self.writer
        if self._warm_start is None:
            self._warm_start = SummaryWriter(str(self.log_dir / "mle"))
        return self._warm_start

    def _write(self, writer: SummaryWriter, panel: str, values: Mapping[str, Any], step: int) -> None:
        for name, value in values.items():
            if isinstance(value, int | float) and value == value:  # skip None and NaN
                writer.add_scalar(f"{panel}/{name}", float(value), step)
        writer.flush()

    def scalars(self, panel: str, values: Mapping[str, Any], step: int) -> None:
        self._write(self._writer(panel), panel, values, step)

    def validation(self, scores: Mapping[str, Any], epoch: int, env_steps: int) -> None:
        """A validation record: ``eval/`` by epoch, the headline also by environment steps."""
        self.scalars("eval", {k: v for k, v in scores.items() if k not in BOOKKEEPING}, epoch)
        if self._env_steps is None:
            # the purge in environment steps: the epoch step's, at this run's steps per epoch (env_steps/epoch)
            purge = None if self.purge_step is None or epoch <= 0 else self.purge_step * (env_steps // epoch)
            self._env_steps = SummaryWriter(str(self.log_dir / ENV_STEPS_RUN), purge_step=purge)
        headline = {key: scores.get(key) for key in HEADLINE.values()}
        self._write(self._env_steps, ENV_STEPS_PANEL, headline, env_steps)

    def hparams(self, hparams: Mapping[str, Any], metric_tags: list[str]) -> None:
        """The run's fields in the HParams tab, beside the last value of each of ``metric_tags`` (series the run
        logged already, e.g. ``best/paper_success``: no single-point chart is added to the Scalars tab)."""
        for summary in hparams_summary(dict(hparams), dict.fromkeys(metric_tags, 0.0)):
            # set by SummaryWriter.__init__, which torch declares as ``file_writer = None``
            cast(FileWriter, self.writer.file_writer).add_summary(summary)
        self.writer.flush()

    def close(self) -> None:
        self.writer.close()
        for writer in (self._warm_start, self._env_steps):
            if writer is not None:
                writer.close()
