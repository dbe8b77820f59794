"""The `job_runs` table: one row per scheduled run of a service job, kept in the job store's SQLite file.

It lives beside APScheduler's own table rather than in DuckDB because it is written at every start and end
of a job, while the DuckDB file may only be held by one writer and is copied whole on every publish.
SQLite in WAL mode lets `auditor jobs` and the HTTP endpoint read it while the service writes.
Columns are documented in docs/service.md.
"""

from __future__ import annotations

import os
import sqlite3
from contextlib import closing
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path

from auditor.errors import ServiceError
from auditor.logs import mask

OUTCOMES = ("running", "succeeded", "partial", "failed", "cancelled", "interrupted", "missed", "skipped")

_SCHEMA = """
CREATE TABLE IF NOT EXISTS job_runs (
    id INTEGER PRIMARY KEY,
    job_id TEXT NOT NULL,            -- e.g. run:prod/RegionOne, email, prune
    scheduled_at TEXT NOT NULL,      -- the run time the trigger gave (UTC, ISO 8601)
    started_at TEXT,                 -- UTC; NULL when the run never started (missed, skipped)
    finished_at TEXT,
    outcome TEXT NOT NULL,           -- see OUTCOMES
    error TEXT,                      -- one line: what failed, when outcome is failed/partial/...
    detail TEXT,                     -- one line: what the run did (snapshot ids, messages sent, ...)
    snapshot_id INTEGER,             -- run jobs: the snapshot they wrote
    pid INTEGER NOT NULL,
    UNIQUE (job_id, scheduled_at)    -- a scheduled time runs at most once
);
CREATE INDEX IF NOT EXISTS job_runs_by_job ON job_runs (job_id, scheduled_at);
"""


@dataclass(frozen=True)
class JobRun:
    id: int
    job_id: str
    scheduled_at: datetime
    started_at: datetime | None
    finished_at: datetime | None
    outcome: str
    error: str | None
    detail: str | None
    snapshot_id: int | None

    @property
    def seconds(self) -> float | None:
        if self.started_at and self.finished_at:
            return (self.finished_at - self.started_at).total_seconds()
        return None


def _iso(moment: datetime) -> str:
    return moment.astimezone(UTC).isoformat(timespec="microseconds")


def _parse(text: str | None) -> datetime | None:
    return datetime.fromisoformat(text) if text else None


def utcnow() -> datetime:
    return datetime.now(UTC)


class JobRuns:
    """Reads and writes job_runs. Every call opens its own short connection, so any thread may call it."""

    def __init__(self, path: Path):
        self.path = path

    def _connect(self) -> sqlite3.Connection:
        try:
            con = sqlite3.connect(self.path, timeout=30, isolation_level=None)
        except sqlite3.Error as exc:
            raise ServiceError(f"{self.path}: cannot open the job store: {exc}") from None
        con.execute("PRAGMA busy_timeout = 30000")
        return con

    def create(self) -> None:
        self.path.parent.mkdir(parents=True, exist_ok=True)
        with closing(self._connect()) as con:
            con.execute("PRAGMA journal_mode = WAL")
            con.executescript(_SCHEMA)

    def started(self, job_id: str, scheduled_at: datetime, started_at: datetime) -> None:
        with closing(self._connect()) as con:
            con.execute(
                "INSERT INTO job_runs (job_id, scheduled_at, started_at, outcome, pid) VALUES (?, ?, ?, 'running', ?) "
                "ON CONFLICT (job_id, scheduled_at) DO NOTHING",
                [job_id, _iso(scheduled_at), _iso(started_at), os.getpid()],
            )

    def finished(self, job_id: str, scheduled_at: datetime, outcome: str, *, started_at: datetime | None = None,
                 error: str | None = None, detail: str | None = None, snapshot_id: int | None = None) -> None:
        """Record how a run ended; also for runs that never started (missed, skipped)."""
        if outcome not in OUTCOMES:
            raise ValueError(f"unknown outcome {outcome!r}")
        now = _iso(utcnow())
        error, detail = (mask(text) if text else text for text in (error, detail))
        with closing(self._connect()) as con:
            con.execute(
                "INSERT INTO job_runs (job_id, scheduled_at, started_at, finished_at, outcome, error, detail, "
                "snapshot_id, pid) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?) "
                "ON CONFLICT (job_id, scheduled_at) DO UPDATE SET finished_at = excluded.finished_at, "
                "outcome = excluded.outcome, error = excluded.error, detail = excluded.detail, "
                "snapshot_id = excluded.snapshot_id, started_at = coalesce(job_runs.started_at, excluded.started_at)",
                [job_id, _iso(scheduled_at), _iso(started_at) if started_at else None,
                 None if outcome == "missed" else now, outcome, error, detail, snapshot_id, os.getpid()],
            )

    def interrupt_running(self, reason: str) -> int:
        """Runs still marked running: the process that ran them is gone (or going). Returns how many."""
        with closing(self._connect()) as con:
            cursor = con.execute(
                "UPDATE job_runs SET outcome = 'interrupted', finished_at = ?, error = ? WHERE outcome = 'running'",
                [_iso(utcnow()), reason],
            )
            return cursor.rowcount

    def latest(self) -> dict[str, JobRun]:
        """The newest run of each job, by scheduled time."""
        rows = self._select(
            "SELECT * FROM job_runs WHERE id IN (SELECT id FROM job_runs j WHERE j.scheduled_at = "
            "(SELECT max(scheduled_at) FROM job_runs k WHERE k.job_id = j.job_id))"
        )
        return {run.job_id: run for run in rows}

    def history(self, job_id: str | None = None, limit: int = 50) -> list[JobRun]:
        return self._select(
            "SELECT * FROM job_runs WHERE ? IS NULL OR job_id = ? ORDER BY scheduled_at DESC, id DESC LIMIT ?",
            [job_id, job_id, limit],
        )

    def outcome_counts(self) -> dict[tuple[str, str], int]:
        """(job_id, outcome) -> number of runs, over the whole table (for /metrics)."""
        if not self.path.is_file():
            return {}
        with closing(self._connect()) as con:
            rows = con.execute("SELECT job_id, outcome, count(*) FROM job_runs GROUP BY 1, 2").fetchall()
        return {(job_id, outcome): count for job_id, outcome, count in rows}

    def _select(self, query: str, params=()) -> list[JobRun]:
        if not self.path.is_file():
            return []
        with closing(self._connect()) as con:
            try:
                rows = con.execute(query.replace("SELECT *", "SELECT id, job_id, scheduled_at, started_at, "
                                                 "finished_at, outcome, error, detail, snapshot_id"), params).fetchall()
            except sqlite3.OperationalError as exc:
                if "no such table" in str(exc):
                    return []
                raise ServiceError(f"{self.path}: cannot read job_runs: {exc}") from None
        return [JobRun(row[0], row[1], _parse(row[2]), _parse(row[3]), _parse(row[4]), *row[5:]) for row in rows]
