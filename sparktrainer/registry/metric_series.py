"""The metric-history concern: every job's metric series, bounded, continued across attempts.

Points come from ``JobProgress`` (``contracts/series.py`` says which number feeds which
series) and are keyed by (job, series, step), so a redelivered or replayed report rewrites its
own point. An attempt that resumed from step S drops the points its predecessor made after S,
so the series goes on from the checkpoint as the model did; reports of an older attempt that
arrive late are ignored. Each series keeps at most ``max_points`` points: when it grows past
that it is thinned in buckets of four, keeping each bucket's minimum and maximum and the first
and last point. A thinned-away step is remembered (``last_step``), so replaying its report
does not bring it back. Every change gets the job's next sequence number: ``?since=`` polling
reads what changed after a cursor, and learns when points were removed (``reset``).
"""

from __future__ import annotations

import sqlite3
from typing import Any

from sparktrainer.contracts import topics as t
from sparktrainer.contracts.events import JobProgress, JobStarted, JobValidated
from sparktrainer.contracts.series import points_of, shown, task_of
from sparktrainer.registry.concern import Concern
from sparktrainer.registry.ids import whole_id

DEFAULT_POINTS_PER_SERIES = 1000
MAX_STEP = 2**53  # steps beyond this are not a real job's (SQLite integers stop at 2**63)
DDL = """
CREATE TABLE IF NOT EXISTS metric_jobs (
    job_id TEXT PRIMARY KEY,
    task TEXT,
    attempt INTEGER NOT NULL,
    seq INTEGER NOT NULL,
    reset_seq INTEGER NOT NULL
);
CREATE TABLE IF NOT EXISTS metric_series (
    job_id TEXT NOT NULL,
    series TEXT NOT NULL,
    last_step INTEGER NOT NULL,
    points INTEGER NOT NULL,
    last_value REAL,  -- the value at the series' highest kept step: what compare reads
    min_value REAL,
    max_value REAL,
    PRIMARY KEY (job_id, series)
) WITHOUT ROWID;
CREATE TABLE IF NOT EXISTS metric_points (
    job_id TEXT NOT NULL,
    series TEXT NOT NULL,
    step INTEGER NOT NULL,
    epoch INTEGER NOT NULL,
    value REAL NOT NULL,
    seq INTEGER NOT NULL,
    PRIMARY KEY (job_id, series, step)
) WITHOUT ROWID;
CREATE INDEX IF NOT EXISTS metric_points_by_seq ON metric_points (job_id, seq);
"""


# --- writing -------------------------------------------------------------------------------


def _job(conn: sqlite3.Connection, job_id: str) -> dict[str, Any]:
    row = conn.execute("SELECT * FROM metric_jobs WHERE job_id = ?", (job_id,)).fetchone()
    if row is not None:
        return dict(row)
    job = {"job_id": job_id, "task": None, "attempt": 0, "seq": 0, "reset_seq": 0}
    conn.execute(
        "INSERT INTO metric_jobs (job_id, task, attempt, seq, reset_seq) VALUES (?, ?, ?, ?, ?)",
        tuple(job.values()),
    )
    return job


def _save_job(conn: sqlite3.Connection, job: dict[str, Any]) -> None:
    conn.execute(
        "UPDATE metric_jobs SET task = ?, attempt = ?, seq = ?, reset_seq = ? WHERE job_id = ?",
        (job["task"], job["attempt"], job["seq"], job["reset_seq"], job["job_id"]),
    )


def _validated(conn: sqlite3.Connection, ev: JobValidated) -> None:
    """What kind of task the job is: it decides how its series are shown."""
    job = _job(conn, ev.job_id)
    job["task"] = task_of(ev.config)
    _save_job(conn, job)


def _started(conn: sqlite3.Connection, ev: JobStarted) -> None:
    """A new attempt: drop what its predecessor recorded after the step it resumes from."""
    job = _job(conn, ev.job_id)
    if ev.attempt <= job["attempt"] or not _plausible(ev.attempt, ev.resumed_from_step or 0):
        return  # this attempt's start, again (redelivered or replayed), or not a real one
    if ev.resumed_from_step is not None:
        _truncate(conn, job, "step > ?", ev.resumed_from_step)
    elif ev.resumed_from_epoch is not None and _plausible(ev.resumed_from_epoch):
        _truncate(conn, job, "epoch > ?", ev.resumed_from_epoch)
    else:
        _truncate(conn, job, "step >= ?", 0)
    job["attempt"] = ev.attempt
    _save_job(conn, job)


def _plausible(*numbers: int) -> bool:
    """Whether every number is one a real job could report (and SQLite can store)."""
    return all(0 <= n <= MAX_STEP for n in numbers)


def _truncate(conn: sqlite3.Connection, job: dict[str, Any], where: str, value: int) -> None:
    removed = conn.execute(
        f"DELETE FROM metric_points WHERE job_id = ? AND {where}", (job["job_id"], value)
    ).rowcount
    conn.execute(
        "UPDATE metric_series SET "
        "points = (SELECT count(*) FROM metric_points p WHERE p.job_id = metric_series.job_id "
        "          AND p.series = metric_series.series), "
        "last_step = coalesce((SELECT max(step) FROM metric_points p "
        "   WHERE p.job_id = metric_series.job_id AND p.series = metric_series.series), -1) "
        "WHERE job_id = ?",
        (job["job_id"],),
    )
    conn.execute(
        f"UPDATE metric_series SET {_SUMMARY_FROM_POINTS} WHERE job_id = ?", (job["job_id"],)
    )
    if removed:
        job["seq"] += 1
        job["reset_seq"] = job["seq"]


# A series' summary (last, min, max) again from its points: after a resume or a rewritten point.
_SUMMARY_FROM_POINTS = (
    "last_value = (SELECT value FROM metric_points p WHERE p.job_id = metric_series.job_id "
    "   AND p.series = metric_series.series ORDER BY step DESC LIMIT 1), "
    "min_value = (SELECT min(value) FROM metric_points p WHERE p.job_id = metric_series.job_id "
    "   AND p.series = metric_series.series), "
    "max_value = (SELECT max(value) FROM metric_points p WHERE p.job_id = metric_series.job_id "
    "   AND p.series = metric_series.series)"
)


def progress_fold(max_points: int) -> Any:
    """The fold of ``JobProgress`` keeping at most ``max_points`` points per series."""

    def fold(conn: sqlite3.Connection, ev: JobProgress) -> None:
        if not _plausible(ev.step, ev.epoch, ev.attempt):
            return
        job = _job(conn, ev.job_id)
        if ev.attempt < job["attempt"]:
            return  # a previous owner's last words
        if ev.attempt > job["attempt"]:  # its start was never seen: it resumed before this step
            _truncate(conn, job, "step >= ?", ev.step)
            job["attempt"] = ev.attempt
        for series, value in points_of(ev).items():
            _add_point(conn, job, series, ev, value, max_points)
        _save_job(conn, job)

    return fold


def _add_point(
    conn: sqlite3.Connection,
    job: dict[str, Any],
    series: str,
    ev: JobProgress,
    value: float,
    max_points: int,
) -> None:
    key = (job["job_id"], series)
    state = conn.execute(
        "SELECT * FROM metric_series WHERE job_id = ? AND series = ?", key
    ).fetchone()
    last_step, points = (state["last_step"], state["points"]) if state else (-1, 0)
    exists = conn.execute(
        "SELECT value, epoch FROM metric_points WHERE job_id = ? AND series = ? AND step = ?",
        (*key, ev.step),
    ).fetchone()
    if exists is None and ev.step < last_step:
        return  # thinned away earlier: a replayed report must not bring it back
    if exists is not None and (exists["value"], exists["epoch"]) == (value, ev.epoch):
        return  # the same report again
    job["seq"] += 1
    conn.execute(
        "INSERT INTO metric_points (job_id, series, step, epoch, value, seq) "
        "VALUES (?, ?, ?, ?, ?, ?) ON CONFLICT (job_id, series, step) DO UPDATE SET "
        "epoch = excluded.epoch, value = excluded.value, seq = excluded.seq",
        (*key, ev.step, ev.epoch, value, job["seq"]),
    )
    points += exists is None
    if points > max_points:
        points = _thin(conn, job, series)
    summary = _summary_after(state, ev.step >= last_step, value)
    conn.execute(
        "INSERT OR REPLACE INTO metric_series "
        "(job_id, series, last_step, points, last_value, min_value, max_value) "
        "VALUES (?, ?, ?, ?, ?, ?, ?)",
        (*key, max(last_step, ev.step), points, *summary),
    )
    if exists is not None:  # a rewritten point may have been the minimum or maximum
        conn.execute(
            f"UPDATE metric_series SET {_SUMMARY_FROM_POINTS} WHERE job_id = ? AND series = ?",
            key,
        )


def _summary_after(
    state: sqlite3.Row | None, latest: bool, value: float
) -> tuple[float | None, float, float]:
    """(last, min, max) of a series once ``value`` is added (``latest``: at its highest step)."""
    if state is None or state["min_value"] is None:
        return value, value, value
    last = value if latest else state["last_value"]
    return last, min(state["min_value"], value), max(state["max_value"], value)


def _thin(conn: sqlite3.Connection, job: dict[str, Any], series: str) -> int:
    """Halve a series, keeping first, last and each bucket's min and max; how many are left."""
    rows = conn.execute(
        "SELECT step, value FROM metric_points WHERE job_id = ? AND series = ? ORDER BY step",
        (job["job_id"], series),
    ).fetchall()
    keep = kept_steps([(r["step"], r["value"]) for r in rows])
    conn.executemany(
        "DELETE FROM metric_points WHERE job_id = ? AND series = ? AND step = ?",
        [(job["job_id"], series, r["step"]) for r in rows if r["step"] not in keep],
    )
    job["seq"] += 1
    job["reset_seq"] = job["seq"]
    return len(keep)


def kept_steps(points: list[tuple[int, float]], bucket: int = 4) -> set[int]:
    """The steps a thinning keeps: first, last, and the min and max of each bucket between."""
    if len(points) <= 2:
        return {step for step, _ in points}
    keep = {points[0][0], points[-1][0]}
    inner = points[1:-1]
    for start in range(0, len(inner), bucket):
        group = inner[start : start + bucket]
        keep.add(min(group, key=lambda p: (p[1], p[0]))[0])
        keep.add(max(group, key=lambda p: (p[1], -p[0]))[0])
    return keep


def metric_series_concern(max_points: int = DEFAULT_POINTS_PER_SERIES) -> Concern:
    """The concern, keeping at most ``max_points`` points per series of a job."""
    return Concern(
        name="metric_series",
        version=2,
        ddl=DDL,
        topics=(*t.VALIDATED_TOPICS, t.JOBS_LIFECYCLE),
        folds={
            JobValidated: _validated,
            JobStarted: _started,
            JobProgress: progress_fold(max_points),
        },
    )


METRIC_SERIES = metric_series_concern()


# --- queries -------------------------------------------------------------------------------


def job_series(
    conn: sqlite3.Connection, job_id: str, since: int = 0, names: list[str] | None = None
) -> dict[str, Any] | None:
    """A job's series (all, or what changed after cursor ``since``); None before any point.

    ``reset`` is true when points were removed after ``since`` (a resume, a thinning): the
    answer then holds every point, to replace what the caller had.
    """
    job_id = whole_id(conn, "job", job_id)
    job = conn.execute("SELECT * FROM metric_jobs WHERE job_id = ?", (job_id,)).fetchone()
    if job is None:
        return None
    reset = since > 0 and since < job["reset_seq"]
    after = 0 if reset else max(0, since)
    rows = conn.execute(
        "SELECT series, step, epoch, value FROM metric_points WHERE job_id = ? AND seq > ? "
        "ORDER BY series, step",
        (job_id, after),
    ).fetchall()
    series: dict[str, dict[str, list[Any]]] = {}
    for r in rows:
        for name, value in shown(r["series"], r["value"], job["task"]):
            if names and name not in names:
                continue
            s = series.setdefault(name, {"steps": [], "epochs": [], "values": []})
            s["steps"].append(r["step"])
            s["epochs"].append(r["epoch"])
            s["values"].append(value)
    return {
        "job_id": job_id,
        "task": job["task"],
        "attempt": job["attempt"],
        "cursor": job["seq"],
        "reset": reset,
        "series": series,
    }
