"""Comparing runs: which jobs (ids, a sweep, a model name's versions, a tag) and what differs.

A query over what the concerns already keep: each job's row (``jobs``), its validated config
(``job_details``), each series' last, lowest and highest value (``metric_series`` keeps them as
it folds, so nothing scans points here), and the data its model was trained on (``models``).
The config is flattened to dotted paths and only the paths whose values differ are returned.
Curves come thinned, every run in one answer (:func:`compare_series`).
"""

from __future__ import annotations

import json
import sqlite3
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from sparktrainer.contracts.events import TERMINAL_STATUSES
from sparktrainer.contracts.series import EPOCH_SERIES, lower_is_better, shown
from sparktrainer.registry.rows import Row

MAX_RUNS = 1000
MAX_CURVE_POINTS = 1000
_IDS = "SELECT value FROM json_each(?)"  # one parameter for any number of ids


class CompareError(ValueError):
    """A comparison that cannot be made as asked (nothing chosen, too many runs)."""


@dataclass(frozen=True)
class RunSelection:
    """Which runs to compare: explicit job ids, a sweep's trials, a name's versions or a tag."""

    jobs: tuple[str, ...] = ()
    sweep: str | None = None
    model: str | None = None
    tag: str | None = None

    def job_ids(self, conn: sqlite3.Connection) -> list[str]:
        """The chosen job ids, in a stable order, at most MAX_RUNS (CompareError past it)."""
        queries = [
            ("SELECT job_id FROM trials WHERE sweep_id = ? ORDER BY trial", self.sweep),
            ("SELECT job_id FROM models WHERE registered_name = ? ORDER BY version", self.model),
            (
                "SELECT m.job_id FROM model_tags t JOIN models m USING (model_id) "
                "WHERE t.tag = ? ORDER BY m.created_at, m.job_id",
                self.tag,
            ),
        ]
        ids = list(self.jobs)
        for sql, value in queries:
            if value:
                ids += [r[0] for r in conn.execute(f"{sql} LIMIT {MAX_RUNS + 1}", (value,))]
        ids = list(dict.fromkeys(ids))
        if len(ids) > MAX_RUNS:
            raise CompareError(f"{len(ids)}+ runs chosen; compare at most {MAX_RUNS} at once")
        return ids


def compare_runs(conn: sqlite3.Connection, job_ids: list[str]) -> Row:
    """Each run's metrics (final and best per series), differing config, data and duration."""
    ids = json.dumps(job_ids)
    jobs = {
        r["job_id"]: r for r in conn.execute(f"SELECT * FROM jobs WHERE job_id IN ({_IDS})", (ids,))
    }
    configs = _configs(conn, ids)
    differing = _differing(list(configs.values()))
    metrics = _summaries(conn, ids)
    data = {
        r["job_id"]: json.loads(r["data"]) if r["data"] else None
        for r in conn.execute(f"SELECT job_id, data FROM models WHERE job_id IN ({_IDS})", (ids,))
    }
    runs = []
    for job_id in job_ids:
        job = jobs.get(job_id)
        config = configs.get(job_id, {})
        runs.append({
            "job_id": job_id,
            "known": job is not None,
            **_job_facts(job),
            "params": {path: config.get(path) for path in differing},
            "metrics": metrics.get(job_id, {}),
            "data": data.get(job_id),
        })  # fmt: skip
    series = sorted({name for run in runs for name in run["metrics"]})
    better = {name: "lower" if lower_is_better(name) else "higher" for name in series}
    return {"runs": runs, "differing": differing, "series": series, "better": better,
            "max_runs": MAX_RUNS}  # fmt: skip


def _job_facts(job: sqlite3.Row | None) -> Row:
    if job is None:
        return {"name": None, "status": None, "model_id": None, "final_metrics": {},
                "created_at": None, "ended_at": None, "duration_s": None}  # fmt: skip
    ended = job["status_at"] if job["status"] in TERMINAL_STATUSES else None
    duration = (
        (datetime.fromisoformat(ended) - datetime.fromisoformat(job["created_at"])).total_seconds()
        if ended
        else None
    )
    return {
        "name": job["name"],
        "status": job["status"],
        "model_id": job["model_id"],
        "final_metrics": json.loads(job["metrics"]) if job["metrics"] else {},
        "created_at": job["created_at"],
        "ended_at": ended,
        "duration_s": duration,  # from submission to the end
    }


def _configs(conn: sqlite3.Connection, ids: str) -> dict[str, dict[str, Any]]:
    rows = conn.execute(f"SELECT job_id, config FROM job_specs WHERE job_id IN ({_IDS})", (ids,))
    return {r["job_id"]: flatten(json.loads(r["config"])) for r in rows}


def flatten(value: Any, prefix: str = "") -> dict[str, Any]:
    """A config as ``{"a.b.c": leaf}``; lists are leaves (compared whole)."""
    if not isinstance(value, dict):
        return {prefix: value}
    out: dict[str, Any] = {}
    stack = [(prefix, value)]
    while stack:  # a loop, not a call per leaf: 1,000 configs are 30,000 leaves
        at, node = stack.pop()
        for key, inner in node.items():
            path = f"{at}.{key}" if at else str(key)
            if isinstance(inner, dict):
                stack.append((path, inner))
            else:
                out[path] = inner
    return out


def _differing(configs: list[dict[str, Any]]) -> list[str]:
    """The paths whose values are not the same in every config (a missing path counts as
    null; 1 and 1.0 differ, as their JSON does). Plain comparisons: 1,000 configs of 30 paths
    took 300 ms through json.dumps."""
    paths = sorted({p for c in configs for p in c})
    out = []
    for p in paths:
        first = configs[0].get(p)
        if any(type(v) is not type(first) or v != first for v in (c.get(p) for c in configs)):
            out.append(p)
    return out


def _summaries(conn: sqlite3.Connection, ids: str) -> dict[str, dict[str, Row]]:
    """Per job and shown series: the final value (at the last step), the best, the last step."""
    rows = conn.execute(
        "SELECT s.job_id, s.series, s.last_step, s.last_value, s.min_value, s.max_value, j.task "
        f"FROM metric_series s JOIN metric_jobs j USING (job_id) WHERE s.job_id IN ({_IDS})",
        (ids,),
    )
    out: dict[str, dict[str, Row]] = {}
    for r in rows:
        if r["last_value"] is None:
            continue
        ends = [
            shown(r["series"], v, r["task"])
            for v in (r["last_value"], r["min_value"], r["max_value"])
        ]
        for (name, last), (_, low), (_, high) in zip(*ends, strict=True):
            best = min(low, high) if lower_is_better(name) else max(low, high)
            out.setdefault(r["job_id"], {})[name] = {
                "final": last,
                "best": best,
                "step": r["last_step"],
            }
    return out


def best_run(comparison: Row, series: str) -> str | None:
    """The job id whose ``series`` is best (ties: the first chosen); None if no run has it."""
    sign = 1 if lower_is_better(series) else -1
    scored = [(sign * r["metrics"][series]["best"], i, r["job_id"])
              for i, r in enumerate(comparison["runs"]) if series in r["metrics"]]  # fmt: skip
    return min(scored)[2] if scored else None


def sweep_facts(conn: sqlite3.Connection, sweep_id: str) -> Row | None:
    """A sweep's metric and direction, and the series that metric is read from."""
    row = conn.execute(
        "SELECT sweep_id, name, metric, direction FROM sweeps WHERE sweep_id = ?", (sweep_id,)
    ).fetchone()
    return None if row is None else {**dict(row), "series": EPOCH_SERIES.get(row["metric"])}


# Each series with at most ``k`` points comes whole; a longer one at k steps evenly spaced
# from its first to its last, each the first kept point at or past its target step: one index
# seek per point on (job_id, series, step), so the cost follows the points answered, not the
# points kept (a scan of every point of 1,000 runs of 1,000 points took a second).
_THINNED = """
WITH s AS (
  SELECT job_id, series, points AS n, last_step, (SELECT min(step) FROM metric_points m
    WHERE m.job_id = s.job_id AND m.series = s.series) AS first_step
  FROM metric_series s WHERE job_id IN (SELECT value FROM json_each(:ids))),
targets (job_id, series, first_step, last_step, j) AS (
  SELECT job_id, series, first_step, last_step, 0 FROM s WHERE n > :k
  UNION ALL SELECT job_id, series, first_step, last_step, j + 1 FROM targets WHERE j + 1 < :k),
picked AS (
  SELECT DISTINCT job_id, series, (SELECT min(step) FROM metric_points m
    WHERE m.job_id = t.job_id AND m.series = t.series
      AND m.step >= t.first_step + (t.last_step - t.first_step) * t.j / (:k - 1)) AS step
  FROM targets t)
SELECT p.job_id, p.series, p.step, p.epoch, p.value FROM picked
CROSS JOIN metric_points p USING (job_id, series, step)
UNION ALL SELECT p.job_id, p.series, p.step, p.epoch, p.value FROM s
CROSS JOIN metric_points p ON p.job_id = s.job_id AND p.series = s.series WHERE s.n <= :k
"""


def compare_series(
    conn: sqlite3.Connection, job_ids: list[str], names: list[str], points: int
) -> Row:
    """Every run's chosen series, each thinned to at most ``points`` points (first and last
    kept, the others at steps evenly spaced between them)."""
    points = max(2, min(points, MAX_CURVE_POINTS))
    ids = json.dumps(job_ids)
    tasks = dict(
        conn.execute(
            f"SELECT job_id, task FROM metric_jobs WHERE job_id IN ({_IDS})", (ids,)
        ).fetchall()
    )
    rows = sorted(tuple(r) for r in conn.execute(_THINNED, {"ids": ids, "k": points}))
    runs: dict[str, dict[str, dict[str, list[Any]]]] = {j: {} for j in job_ids}
    wanted = set(names)
    for job_id, series, step, epoch, raw in rows:
        for name, value in shown(series, raw, tasks.get(job_id)):
            if wanted and name not in wanted:
                continue
            s = runs[job_id].setdefault(name, {"steps": [], "epochs": [], "values": []})
            s["steps"].append(step)
            s["epochs"].append(epoch)
            s["values"].append(value)
    return {"points": points, "runs": [{"job_id": j, "series": runs[j]} for j in job_ids]}
