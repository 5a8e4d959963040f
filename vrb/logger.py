"""TensorBoard output of a run: scalars grouped into panels, and an HParams summary at the end.

Panels: ``eval/`` (greedy policy on the fixed validation dialogues: both metric definitions), ``rollout/``
(the sampled training dialogues), ``ppo/``, ``estimator/`` (losses, f on expert and policy batches, KL, phi),
``mle/`` (behaviour cloning), ``perf/`` (steps per second).
"""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path
from typing import Any

from torch.utils.tensorboard import SummaryWriter


class RunLogger:
    def __init__(self, log_dir: str | Path, purge_step: int | None = None):
        self.writer = SummaryWriter(str(log_dir), purge_step=purge_step)

    def scalars(self, panel: str, values: Mapping[str, Any], step: int) -> None:
        for name, value in values.items():
            if isinstance(value, int | float) and value == value:  # skip None and NaN
                self.writer.add_scalar(f"{panel}/{name}", float(value), step)
        self.writer.flush()

    def hparams(self, hparams: Mapping[str, Any], metrics: Mapping[str, Any]) -> None:
        clean = {f"hparam/{k}": float(v) for k, v in metrics.items() if isinstance(v, int | float) and v == v}
        self.writer.add_hparams(dict(hparams), clean, run_name="hparams")
        self.writer.flush()

    def close(self) -> None:
        self.writer.close()
