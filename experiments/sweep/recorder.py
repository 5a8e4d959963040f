"""The one writer of a sweep's store: each ended trial becomes one row."""

from __future__ import annotations

import logging
from collections.abc import Mapping, Sequence
from typing import Any

from experiments.store import ResultStore, TrialRecord
from experiments.sweep.spec import Trial

logger = logging.getLogger("experiments.sweep")


class Recorder:
    """Appends an ended trial to the store (the driver is its one writer) and keeps the failed ones' ids. A row's
    config is the trial's, its evaluation settings and, when the command line changed the config file's settings
    (``experiments.sweep.overrides``), those changes."""

    def __init__(
        self,
        store: ResultStore,
        trials: Sequence[Trial],
        evaluation: Mapping[str, int],
        overrides: Mapping[str, Any] | None = None,
    ):
        self.store = store
        self.sweep_dir = store.path.parent
        self.trials = {trial.trial_id: trial for trial in trials}
        self.evaluation = dict(evaluation)
        self.extra: dict[str, Any] = {"evaluation": self.evaluation}
        if overrides:
            self.extra["overrides"] = dict(overrides)
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
                config={**known.config.to_dict(), **self.extra},
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
