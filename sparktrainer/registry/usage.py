"""The usage concern: what each attempt used (the trainer's clock), summed per job and tenant.

Folds the ``usage`` of every attempt's end event (``contracts/usage.py``) into one row per
(job, attempt): the first report of an attempt stands, so a redelivered or replayed end (a
trainer re-announces a stored outcome word for word) changes nothing. A day is the UTC date of
the attempt's end. The tenant and class of a job come from its validated verdict, joined when
read (the queue concern's ``queue`` rows; validated and lifecycle topics are not ordered
against each other), so an attempt whose job's verdict is not folded yet counts for no tenant.
"""

from __future__ import annotations

import sqlite3
from datetime import UTC, datetime, timedelta
from typing import Any

from sparktrainer.contracts import topics as t
from sparktrainer.contracts.events import JobCancelled, JobCompleted, JobFailed, JobPreempted
from sparktrainer.registry.concern import Concern
from sparktrainer.registry.rows import Row, iso

DDL = """
CREATE TABLE IF NOT EXISTS attempt_usage (
    job_id TEXT NOT NULL,
    attempt INTEGER NOT NULL,
    ended_at TEXT NOT NULL,
    day TEXT NOT NULL,
    wall_s REAL NOT NULL,
    gpus INTEGER NOT NULL,
    gpu_s REAL NOT NULL,
    cpu_s REAL NOT NULL,
    PRIMARY KEY (job_id, attempt)
);
CREATE INDEX IF NOT EXISTS attempt_usage_by_day ON attempt_usage (day);
"""
MAX_DAYS = 366  # the longest span one answer covers
FIGURES = ("wall_s", "cpu_s", "gpu_s")


def _ended(conn: sqlite3.Connection, ev: Any) -> None:
    """Each attempt the end closes, once (the first report of an attempt stands)."""
    at = ev.at if ev.at.tzinfo else ev.at.replace(tzinfo=UTC)
    day = at.astimezone(UTC).date().isoformat()
    for used in ev.usage:
        conn.execute(
            "INSERT INTO attempt_usage VALUES (?, ?, ?, ?, ?, ?, ?, ?) "
            "ON CONFLICT (job_id, attempt) DO NOTHING",
            (ev.job_id, used.attempt, iso(at), day, used.wall_s, used.gpus, used.gpu_s,
             used.cpu_s),
        )  # fmt: skip


USAGE = Concern(
    name="usage",
    version=1,
    ddl=DDL,
    topics=(t.JOBS_LIFECYCLE,),
    folds={kind: _ended for kind in (JobCompleted, JobFailed, JobCancelled, JobPreempted)},
)


# --- queries -------------------------------------------------------------------------------


def _figures(r: sqlite3.Row) -> Row:
    return {"attempts": r["attempts"], "jobs": r["jobs"],
            **{f: round(float(r[f]), 3) for f in FIGURES}}  # fmt: skip


def _sums(group: str) -> str:
    return (
        f"SELECT q.tenant AS tenant, {group}, count(*) AS attempts, "
        "count(DISTINCT u.job_id) AS jobs, sum(u.wall_s) AS wall_s, sum(u.cpu_s) AS cpu_s, "
        "sum(u.gpu_s) AS gpu_s FROM attempt_usage u JOIN queue q USING (job_id) "
        "WHERE u.day >= ? AND (? IS NULL OR q.tenant = ?) "
        f"GROUP BY q.tenant, {group} ORDER BY q.tenant, {group}"
    )


def tenant_usage(
    conn: sqlite3.Connection, tenant: str | None = None, days: int = 30,
    now: datetime | None = None,
) -> list[Row]:  # fmt: skip
    """Each tenant's usage (one tenant's, or every one's) over the last ``days`` UTC days: its
    totals, per resource class, and per day and class."""
    since = since_day(days, now)
    params = (since, tenant, tenant)
    by_day = conn.execute(_sums("u.day, q.resource_class"), params).fetchall()
    by_class = conn.execute(_sums("q.resource_class"), params).fetchall()
    out: dict[str, Row] = {}
    for r in by_class:
        mine = out.setdefault(r["tenant"], no_usage(r["tenant"], since))
        mine["classes"].append({"class": r["resource_class"], **_figures(r)})
    for r in by_day:
        out[r["tenant"]]["days"].append(
            {"day": r["day"], "class": r["resource_class"], **_figures(r)}
        )
    for mine in out.values():
        mine["totals"] = _total(mine["classes"])
    return list(out.values())


def since_day(days: int, now: datetime | None = None) -> str:
    """The first UTC day of the last ``days`` (within 1..MAX_DAYS), today being the last."""
    days = max(1, min(int(days), MAX_DAYS))
    return ((now or datetime.now(UTC)) - timedelta(days=days - 1)).date().isoformat()


def no_usage(tenant: str, since: str) -> Row:
    """The answer for a tenant that used nothing since ``since``."""
    totals = {"attempts": 0, "jobs": 0, **dict.fromkeys(FIGURES, 0.0)}
    return {"tenant": tenant, "since": since, "totals": totals, "classes": [], "days": []}


def _total(parts: list[Row]) -> Row:
    """The sum of per-class figures (a job has one class, so jobs add up too)."""
    total: Row = {"attempts": 0, "jobs": 0, **dict.fromkeys(FIGURES, 0.0)}
    for part in parts:
        for key in total:
            total[key] += part[key]
    return {k: round(v, 3) if isinstance(v, float) else v for k, v in total.items()}


def job_usage(conn: sqlite3.Connection, job_id: str) -> Row:
    """What each attempt of one job used, and their sum."""
    rows = conn.execute(
        "SELECT attempt, ended_at, wall_s, gpus, gpu_s, cpu_s FROM attempt_usage "
        "WHERE job_id = ? ORDER BY attempt",
        (job_id,),
    ).fetchall()
    attempts = [dict(r) for r in rows]
    totals = {f: round(sum(a[f] for a in attempts), 3) for f in FIGURES}
    return {"attempts": attempts, **totals}
