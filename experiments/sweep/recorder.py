"""The one writer of a sweep's store: each ended trial becomes one row."""

from __future__ import annotations

import logging
from collections.abc import Mapping, Sequence
from typing import Any

from experiments.store import ResultStore, TrialRecord
from experiments.sweep.spec import Trial

logger = logging.getLogger("experiments.sweep")


class Recorder:
    """Appends an ended trial to the store (the driver is its one writer) and keeps the failed ones' ids."""

    def __init__(self, store: ResultStore, trials: Sequence[Trial], evaluation: Mapping[str, int]):
        self.store = store
        self.sweep_dir = store.path.parent
        self.trials = {trial.trial_id: trial for trial in trials}
        self.evaluation = dict(evaluation)
        self.failed: list[str] = []

    def __call__(
        self, trial: Trial | str, status: str, attempts: int, payload: Mapping[str, Any], error: str
    ) -> None:
        known = self.trials[trial if isinstance(trial, str) else trial.trial_id]
        row = self.store.append(
            TrialRecord(
                trial_id=known.trial_id,
                status=status,
                attempts=attempts,
                axes=known.axes,
                config={**known.config.to_dict(), "evaluation": self.evaluation},
                metrics=payload.get("metrics", {}),
                versions=payload.get("versions", {}),
                error=error,
            )
        )
        logger.info(
            "trial %s %s after %d attempt(s) (store row %d)", known.trial_id, status, attempts, row.row
        )
        if status == "failed":
            self.failed.append(known.trial_id)
