"""The sweeps concern: each sweep, its trials and the controller's decisions, and the table of them.

A trial is a job: its status, progress and metrics come from the jobs concern; this concern
keeps what only the sweep knows (trial number, parameters, an early stop and why), so
:func:`get_sweep` joins the two into the table `sparktrainer sweeps show` prints.
"""

from __future__ import annotations

import json
import sqlite3
from typing import Any

from sparktrainer.contracts import topics as t
from sparktrainer.contracts.schedule_events import (
    SweepEnded,
    SweepValidated,
    TrialPlanned,
    TrialRejected,
    TrialStopped,
    TrialSubmitted,
)
from sparktrainer.contracts.sweeps import finite
from sparktrainer.registry.concern import Concern
from sparktrainer.registry.ids import whole_id
from sparktrainer.registry.rows import Page, Row, bounded, decoded, iso

DDL = """
CREATE TABLE IF NOT EXISTS sweeps (
    sweep_id TEXT PRIMARY KEY,
    name TEXT NOT NULL,
    sampler TEXT NOT NULL,
    metric TEXT NOT NULL,
    direction TEXT NOT NULL,
    trials INTEGER NOT NULL,
    max_concurrent INTEGER NOT NULL,
    early_stopping TEXT NOT NULL,
    config TEXT NOT NULL,
    ended TEXT,
    validated_at TEXT NOT NULL,
    tenant TEXT NOT NULL DEFAULT 'default'
);
CREATE TABLE IF NOT EXISTS trials (
    job_id TEXT PRIMARY KEY,
    sweep_id TEXT NOT NULL,
    trial INTEGER NOT NULL,
    params TEXT NOT NULL,
    submitted INTEGER NOT NULL,
    stopped TEXT,
    planned_at TEXT NOT NULL,
    rejected TEXT
);
CREATE INDEX IF NOT EXISTS trials_by_sweep ON trials (sweep_id, trial);
"""


def _validated(conn: sqlite3.Connection, ev: SweepValidated) -> None:
    c = ev.config
    conn.execute(
        "INSERT INTO sweeps VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, NULL, ?, ?) ON CONFLICT (sweep_id) "
        "DO NOTHING",
        (
            ev.sweep_id,
            ev.name,
            c.sampler,
            c.metric,
            c.better(),
            ev.trials,
            c.max_concurrent,
            c.early_stopping.rule,
            c.model_dump_json(),
            iso(ev.validated_at),
            ev.tenant,
        ),
    )


def _planned(conn: sqlite3.Connection, ev: TrialPlanned) -> None:
    """The first plan of a trial stands (a restarted controller never plans it again)."""
    conn.execute(
        "INSERT INTO trials VALUES (?, ?, ?, ?, 0, NULL, ?, NULL) ON CONFLICT (job_id) DO NOTHING",
        (ev.job_id, ev.sweep_id, ev.trial, json.dumps(ev.params), iso(ev.planned_at)),
    )


def _submitted(conn: sqlite3.Connection, ev: TrialSubmitted) -> None:
    conn.execute("UPDATE trials SET submitted = 1 WHERE job_id = ?", (ev.job_id,))


def _stopped(conn: sqlite3.Connection, ev: TrialStopped) -> None:
    why = json.dumps({"rule": ev.rule, "epoch": ev.epoch, "reason": ev.reason})
    conn.execute(
        "UPDATE trials SET stopped = ? WHERE job_id = ? AND stopped IS NULL", (why, ev.job_id)
    )


def _rejected(conn: sqlite3.Connection, ev: TrialRejected) -> None:
    """Its id is another job's: the jobs row under that id is not this trial's."""
    conn.execute(
        "UPDATE trials SET rejected = ? WHERE job_id = ? AND sweep_id = ? AND rejected IS NULL",
        ("; ".join(ev.errors)[:1000], ev.job_id, ev.sweep_id),
    )


def _ended(conn: sqlite3.Connection, ev: SweepEnded) -> None:
    conn.execute(
        "UPDATE sweeps SET ended = ? WHERE sweep_id = ? AND ended IS NULL",
        (ev.model_dump_json(), ev.sweep_id),
    )


SWEEPS = Concern(
    name="sweeps",
    version=2,
    ddl=DDL,
    topics=(t.SWEEPS,),
    folds={
        SweepValidated: _validated,
        TrialPlanned: _planned,
        TrialSubmitted: _submitted,
        TrialStopped: _stopped,
        TrialRejected: _rejected,
        SweepEnded: _ended,
    },
)
SWEEP_JSON = ("config", "ended")


# --- queries -------------------------------------------------------------------------------


def list_sweeps(conn: sqlite3.Connection, limit: int = 50, offset: int = 0) -> Page:
    """Sweeps, newest first, with their status (the sweep's job row) and trial counts."""
    limit, offset = bounded(limit, offset)
    total = conn.execute("SELECT count(*) FROM sweeps").fetchone()[0]
    rows = conn.execute(
        "SELECT s.sweep_id, s.name, s.sampler, s.metric, s.direction, s.trials, s.ended, s.tenant, "
        "j.status, (SELECT count(*) FROM trials WHERE sweep_id = s.sweep_id) AS planned "
        "FROM sweeps s LEFT JOIN jobs j ON j.job_id = s.sweep_id "
        "ORDER BY s.validated_at DESC, s.sweep_id LIMIT ? OFFSET ?",
        (limit, offset),
    ).fetchall()
    return Page([decoded(r, ("ended",)) for r in rows], total, limit, offset)


def _trial(r: sqlite3.Row, metric: str) -> Row:
    if r["rejected"]:  # the jobs row under its id is another job's: none of it is shown
        return {"trial": r["trial"], "job_id": r["job_id"], "params": json.loads(r["params"]),
                "status": "rejected", metric: None, "epoch": None, "stopped": None,
                "reason": r["rejected"], "model_id": None}  # fmt: skip
    metrics = json.loads(r["metrics"]) if r["metrics"] else {}
    progress = json.loads(r["progress"]) if r["progress"] else {}
    value = metrics.get(metric) if r["status"] == "completed" else progress.get(metric)
    stopped = json.loads(r["stopped"]) if r["stopped"] else None
    status = r["status"] or "planned"
    if stopped and status == "cancelled":
        status = "stopped"
    return {
        "trial": r["trial"],
        "job_id": r["job_id"],
        "params": json.loads(r["params"]),
        "status": status,
        metric: value if finite(value) else None,
        "epoch": progress.get("epoch"),
        "stopped": stopped,
        "reason": r["reason"],
        "model_id": r["model_id"],
    }


def get_sweep(conn: sqlite3.Connection, sweep_id: str) -> Row | None:
    """One sweep (its id or a unique prefix): its search, status, best trial, every trial."""
    sweep_id = whole_id(conn, "sweep", sweep_id)
    row = conn.execute(
        "SELECT s.*, j.status, j.reason FROM sweeps s LEFT JOIN jobs j ON j.job_id = s.sweep_id "
        "WHERE s.sweep_id = ?",
        (sweep_id,),
    ).fetchone()
    if row is None:
        return None
    sweep = decoded(row, SWEEP_JSON)
    trials = conn.execute(
        "SELECT tr.*, j.status, j.progress, j.metrics, j.reason, j.model_id FROM trials tr "
        "LEFT JOIN jobs j USING (job_id) WHERE tr.sweep_id = ? ORDER BY tr.trial",
        (sweep_id,),
    ).fetchall()
    sweep["trial_table"] = [_trial(r, sweep["metric"]) for r in trials]
    return sweep


def best_first(sweep: dict[str, Any]) -> list[Row]:
    """The completed trials, best first by the sweep's metric and direction."""
    metric, sign = sweep["metric"], (1 if sweep["direction"] == "minimize" else -1)
    table = sweep["trial_table"]
    done = [tr for tr in table if tr["status"] == "completed" and tr[metric] is not None]
    return sorted(done, key=lambda tr: (sign * tr[metric], tr["trial"]))
