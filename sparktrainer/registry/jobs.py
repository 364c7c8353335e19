"""The jobs concern: one row per job (status, verdict, progress, outcome), and its queries.

The row changes through the pure folds of ``job_folds.py``; this module loads the row,
applies the fold and saves the result, inside the transaction that also stores the offset.
"""

from __future__ import annotations

import json
import sqlite3
from typing import Any

from sparktrainer.contracts import topics as t
from sparktrainer.contracts.events import ModelRegistered
from sparktrainer.contracts.records import Received
from sparktrainer.contracts.schedule_events import SweepValidated
from sparktrainer.registry.concern import Concern
from sparktrainer.registry.ids import whole_id
from sparktrainer.registry.job_folds import JOB_FOLDS, Submission, submission_of
from sparktrainer.registry.rows import Page, Row, bounded, decoded
from sparktrainer.settings import Limits

DDL = """
CREATE TABLE IF NOT EXISTS jobs (
    job_id TEXT PRIMARY KEY,
    name TEXT,
    framework TEXT,
    type TEXT,
    config_kind TEXT,
    status TEXT NOT NULL,
    status_at TEXT NOT NULL,
    errors TEXT NOT NULL,
    warnings TEXT NOT NULL,
    progress TEXT,
    checkpoint TEXT,
    metrics TEXT,
    model_id TEXT,
    reason TEXT,
    cause TEXT,
    retriable INTEGER,
    signal INTEGER,
    device TEXT,
    worker TEXT,
    attempt INTEGER NOT NULL,
    created_at TEXT NOT NULL,
    updated_at TEXT NOT NULL,
    tenant TEXT
);
CREATE INDEX IF NOT EXISTS jobs_by_updated ON jobs (updated_at DESC, job_id);
CREATE INDEX IF NOT EXISTS jobs_by_status ON jobs (status, updated_at DESC);
"""
JOB_JSON = ("errors", "warnings", "progress", "checkpoint", "metrics")


# --- writing -------------------------------------------------------------------------------


def _load(conn: sqlite3.Connection, job_id: str) -> Row | None:
    r = conn.execute("SELECT * FROM jobs WHERE job_id = ?", (job_id,)).fetchone()
    return None if r is None else decoded(r, JOB_JSON)


def _save(conn: sqlite3.Connection, row: Row) -> None:
    values = {k: (json.dumps(v) if k in JOB_JSON and v is not None else v) for k, v in row.items()}
    columns = ", ".join(values)
    marks = ", ".join(f":{k}" for k in values)
    conn.execute(f"INSERT OR REPLACE INTO jobs ({columns}) VALUES ({marks})", values)


def _fold(conn: sqlite3.Connection, event: Any) -> None:
    """Load the job's row, fold the event into it (pure), save it if it changed."""
    job_id = event.sweep_id if isinstance(event, SweepValidated) else event.job_id
    new = JOB_FOLDS[type(event)](_load(conn, job_id), event)
    if new is not None:
        _save(conn, new)


def _link_model(conn: sqlite3.Connection, ev: ModelRegistered) -> None:
    """The job that trained a registered model names it."""
    conn.execute(
        "UPDATE jobs SET model_id = ? WHERE job_id = ? AND model_id IS NULL",
        (ev.model_id, ev.job_id),
    )


def _submission(rec: Received, limits: Limits) -> Submission | None:
    return submission_of(rec, limits.submission_bytes)


JOBS = Concern(
    name="jobs",
    version=3,
    ddl=DDL,
    topics=(t.JOBS_SUBMITTED, *t.VALIDATED_TOPICS, t.JOBS_REJECTED, t.JOBS_LIFECYCLE, t.SWEEPS),
    folds={**{kind: _fold for kind in JOB_FOLDS}, ModelRegistered: _link_model},
    raw_topics={t.JOBS_SUBMITTED: _submission},
)


# --- queries -------------------------------------------------------------------------------


def list_jobs(
    conn: sqlite3.Connection, status: str | None = None, limit: int = 50, offset: int = 0
) -> Page:
    """Jobs, most recently updated first, optionally of one status."""
    limit, offset = bounded(limit, offset)
    clause, params = ("WHERE status = ?", [status]) if status else ("", [])
    total = conn.execute(f"SELECT count(*) FROM jobs {clause}", params).fetchone()[0]
    rows = conn.execute(
        f"SELECT * FROM jobs {clause} ORDER BY updated_at DESC, job_id LIMIT ? OFFSET ?",
        [*params, limit, offset],
    ).fetchall()
    return Page(items=[_job(r) for r in rows], total=total, limit=limit, offset=offset)


def _job(row: sqlite3.Row) -> Row:
    job = decoded(row, JOB_JSON)
    job.pop("status_at", None)
    if job["retriable"] is not None:  # SQLite keeps it as 0/1; answers say true/false
        job["retriable"] = bool(job["retriable"])
    return job


def get_job(conn: sqlite3.Connection, job_id: str) -> Row | None:
    """One job (its id, or a unique prefix of it): status, progress, errors; None if unknown."""
    job_id = whole_id(conn, "job", job_id)
    row = conn.execute("SELECT * FROM jobs WHERE job_id = ?", (job_id,)).fetchone()
    return _job(row) if row else None


def count_by_status(conn: sqlite3.Connection) -> dict[str, int]:
    """How many jobs the read model holds in each status."""
    rows = conn.execute("SELECT status, count(*) AS n FROM jobs GROUP BY status").fetchall()
    return {r["status"]: r["n"] for r in rows}
