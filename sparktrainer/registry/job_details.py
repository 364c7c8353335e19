"""The job-details concern: a job's normalized config, the checkpoints it saved, its preemptions.

What a job page shows beyond the job's row (``jobs.py``): the config as the validator
normalized it (a re-driven submission's later verdict wins), the last checkpoints the
trainer announced, one per step, at most ``MAX_CHECKPOINTS`` a job, and each preempted attempt
(a trainer's stop, or a higher priority job it gave way to) with its step and reason.
"""

from __future__ import annotations

import json
import sqlite3
from typing import Any

from sparktrainer.contracts import topics as t
from sparktrainer.contracts.events import CheckpointSaved, JobPreempted, JobValidated
from sparktrainer.registry.concern import Concern
from sparktrainer.registry.rows import iso

MAX_CHECKPOINTS = 100
DDL = """
CREATE TABLE IF NOT EXISTS job_specs (
    job_id TEXT PRIMARY KEY,
    config_kind TEXT NOT NULL,
    config TEXT NOT NULL,
    validated_at TEXT NOT NULL
);
CREATE TABLE IF NOT EXISTS job_checkpoints (
    job_id TEXT NOT NULL,
    step INTEGER NOT NULL,
    epoch INTEGER NOT NULL,
    attempt INTEGER NOT NULL,
    key TEXT NOT NULL,
    size_bytes INTEGER NOT NULL,
    upload_s REAL,
    at TEXT NOT NULL,
    PRIMARY KEY (job_id, step)
) WITHOUT ROWID;
CREATE TABLE IF NOT EXISTS job_preemptions (
    job_id TEXT NOT NULL,
    attempt INTEGER NOT NULL,
    step INTEGER,
    reason TEXT NOT NULL,
    at TEXT NOT NULL,
    PRIMARY KEY (job_id, attempt)
) WITHOUT ROWID;
"""
_SQL_INT = 2**63 - 1


def _spec(conn: sqlite3.Connection, ev: JobValidated) -> None:
    at = iso(ev.validated_at)
    conn.execute(
        "INSERT INTO job_specs (job_id, config_kind, config, validated_at) VALUES (?, ?, ?, ?) "
        "ON CONFLICT (job_id) DO UPDATE SET config_kind = excluded.config_kind, "
        "config = excluded.config, validated_at = excluded.validated_at "
        "WHERE excluded.validated_at >= job_specs.validated_at",
        (ev.job_id, ev.config_kind, ev.config.model_dump_json(), at),
    )


def _checkpoint(conn: sqlite3.Connection, ev: CheckpointSaved) -> None:
    numbers = (ev.step, ev.epoch, ev.attempt, ev.size_bytes)
    if not all(0 <= n <= _SQL_INT for n in numbers):
        return  # not a checkpoint any trainer saved
    # Named parameters: a value cannot land in its neighbour's column (SQLite would store it).
    conn.execute(
        "INSERT OR REPLACE INTO job_checkpoints "
        "(job_id, step, epoch, attempt, key, size_bytes, upload_s, at) VALUES "
        "(:job_id, :step, :epoch, :attempt, :key, :size_bytes, :upload_s, :at)",
        {
            **ev.model_dump(
                include={"job_id", "step", "epoch", "attempt", "size_bytes", "upload_s"}
            ),
            "key": ev.key[:1024],
            "at": iso(ev.at),
        },
    )
    conn.execute(
        "DELETE FROM job_checkpoints WHERE job_id = ? AND step NOT IN "
        "(SELECT step FROM job_checkpoints WHERE job_id = ? ORDER BY step DESC LIMIT ?)",
        (ev.job_id, ev.job_id, MAX_CHECKPOINTS),
    )


def _preempted(conn: sqlite3.Connection, ev: JobPreempted) -> None:
    if not (0 <= ev.attempt <= _SQL_INT and (ev.step is None or 0 <= ev.step <= _SQL_INT)):
        return  # not an attempt any trainer ran
    conn.execute(
        "INSERT OR REPLACE INTO job_preemptions (job_id, attempt, step, reason, at) "
        "VALUES (:job_id, :attempt, :step, :reason, :at)",
        {"job_id": ev.job_id, "attempt": ev.attempt, "step": ev.step,
         "reason": ev.reason[:1024], "at": iso(ev.at)},
    )  # fmt: skip


JOB_DETAILS = Concern(
    name="job_details",
    version=3,  # 2: checkpoints stored key and size_bytes swapped; 3: preemptions
    ddl=DDL,
    topics=(*t.VALIDATED_TOPICS, t.JOBS_LIFECYCLE),
    folds={JobValidated: _spec, CheckpointSaved: _checkpoint, JobPreempted: _preempted},
)


def job_details(conn: sqlite3.Connection, job_id: str) -> dict[str, Any]:
    """The job's normalized config (None before it was validated), its checkpoints and its
    preempted attempts."""
    spec = conn.execute("SELECT * FROM job_specs WHERE job_id = ?", (job_id,)).fetchone()
    rows = conn.execute(
        "SELECT step, epoch, attempt, key, size_bytes, upload_s, at FROM job_checkpoints "
        "WHERE job_id = ? ORDER BY step",
        (job_id,),
    ).fetchall()
    preempted = conn.execute(
        "SELECT attempt, step, reason, at FROM job_preemptions WHERE job_id = ? ORDER BY attempt",
        (job_id,),
    ).fetchall()
    return {
        "config": json.loads(spec["config"]) if spec else None,
        "checkpoints": [dict(r) for r in rows],
        "preemptions": [dict(r) for r in preempted],
    }
