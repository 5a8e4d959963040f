"""The results store of a sweep: one SQLite file, one row appended per trial attempt that ended for good.

Rows are never changed or deleted (triggers refuse it), so a store is an audit log: a trial that failed and
later finished has both rows, and readers take the newest ``finished`` row of each trial. Only the sweep's
driver writes; reports may read while a sweep runs.
"""

from __future__ import annotations

import json
import sqlite3
from collections.abc import Iterator, Mapping
from contextlib import closing, contextmanager
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from envs.fileio import to_jsonable

STORE_NAME = "results.sqlite"
STATUSES = ("finished", "failed")

_SCHEMA = """
CREATE TABLE IF NOT EXISTS trials (
    row INTEGER PRIMARY KEY AUTOINCREMENT,
    trial_id TEXT NOT NULL,
    status TEXT NOT NULL CHECK (status IN ('finished', 'failed')),
    attempts INTEGER NOT NULL,
    recorded_at TEXT NOT NULL,
    axes TEXT NOT NULL,
    config TEXT NOT NULL,
    metrics TEXT NOT NULL,
    versions TEXT NOT NULL,
    error TEXT NOT NULL
);
CREATE INDEX IF NOT EXISTS trials_by_id ON trials (trial_id, status);
CREATE TRIGGER IF NOT EXISTS trials_append_only_update BEFORE UPDATE ON trials
BEGIN SELECT RAISE(ABORT, 'the results store is append-only'); END;
CREATE TRIGGER IF NOT EXISTS trials_append_only_delete BEFORE DELETE ON trials
BEGIN SELECT RAISE(ABORT, 'the results store is append-only'); END;
"""
_JSON_COLUMNS = ("axes", "config", "metrics", "versions")


@dataclass(frozen=True)
class TrialRecord:
    """How one trial ended: grid coordinates, full config, metrics and the code/data versions it ran on."""

    trial_id: str
    status: str
    attempts: int
    axes: Mapping[str, Any]  # the grid values that tell this trial apart (algo, simulator, seed, ic, ...)
    config: Mapping[str, Any]  # the whole TrainConfig plus the evaluation settings
    metrics: Mapping[str, Any] = field(default_factory=dict)
    versions: Mapping[str, Any] = field(default_factory=dict)
    error: str = ""
    recorded_at: str = ""
    row: int | None = None

    def __post_init__(self) -> None:
        if self.status not in STATUSES:
            raise ValueError(f"trial {self.trial_id}: status {self.status!r}, expected one of {STATUSES}")


class ResultStore:
    """Append-only SQLite store at ``SWEEP_DIR/results.sqlite``."""

    def __init__(self, sweep_dir: str | Path):
        self.path = Path(sweep_dir) / STORE_NAME
        self.path.parent.mkdir(parents=True, exist_ok=True)
        with self._connect() as conn:
            conn.executescript(_SCHEMA)

    @classmethod
    def open_existing(cls, sweep_dir: str | Path) -> ResultStore:
        path = Path(sweep_dir) / STORE_NAME
        if not path.is_file():
            raise FileNotFoundError(
                f"{path} does not exist: is {sweep_dir} a sweep folder written by experiments.sweep?"
            )
        return cls(sweep_dir)

    @contextmanager
    def _connect(self) -> Iterator[sqlite3.Connection]:
        with closing(sqlite3.connect(self.path, timeout=60)) as conn, conn:
            yield conn

    def append(self, record: TrialRecord) -> TrialRecord:
        recorded_at = record.recorded_at or datetime.now(UTC).isoformat(timespec="seconds")
        values = {
            name: json.dumps(getattr(record, name), sort_keys=True, default=to_jsonable)
            for name in _JSON_COLUMNS
        }
        with self._connect() as conn:
            cursor = conn.execute(
                "INSERT INTO trials (trial_id, status, attempts, recorded_at, axes, config, metrics,"
                " versions, error) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)",
                (
                    record.trial_id,
                    record.status,
                    record.attempts,
                    recorded_at,
                    values["axes"],
                    values["config"],
                    values["metrics"],
                    values["versions"],
                    record.error,
                ),
            )
            row = cursor.lastrowid
        return TrialRecord(**{**record.__dict__, "recorded_at": recorded_at, "row": row})

    def records(self, status: str | None = None) -> list[TrialRecord]:
        """Every row in the order written, optionally only those of one status."""
        query, args = "SELECT * FROM trials", ()
        if status is not None:
            query, args = query + " WHERE status = ?", (status,)
        with self._connect() as conn:
            conn.row_factory = sqlite3.Row
            rows = conn.execute(query + " ORDER BY row", args).fetchall()
        return [_record(row) for row in rows]

    def finished(self) -> dict[str, TrialRecord]:
        """The newest finished row of each trial, by trial id."""
        return {record.trial_id: record for record in self.records("finished")}

    def finished_ids(self) -> set[str]:
        with self._connect() as conn:
            return {
                row[0]
                for row in conn.execute("SELECT DISTINCT trial_id FROM trials WHERE status = 'finished'")
            }


def _record(row: sqlite3.Row) -> TrialRecord:
    values = dict(row)
    for name in _JSON_COLUMNS:
        values[name] = json.loads(values[name])
    return TrialRecord(**values)
