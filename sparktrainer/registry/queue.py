"""The queue concern: where each validated job waits, which trainers are alive, the queue view.

Folds the route of every validated job (its class, priority and topic) and the trainers'
heartbeats; the job's status comes from the jobs concern. :func:`queue_view` orders each
class's waiting jobs by the trainers' own pick rule (``contracts/scheduling.py``), so a
position is the order a trainer of that class takes them in.
"""

from __future__ import annotations

import json
import sqlite3
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

from sparktrainer.contracts import topics as t
from sparktrainer.contracts.events import JobValidated
from sparktrainer.contracts.fairshare import Candidate, FairShare, Ledger, Share, UsageWindow
from sparktrainer.contracts.schedule_events import TrainerHeartbeat
from sparktrainer.contracts.scheduling import CLASSES, PRIORITIES, Waiting, effective_level
from sparktrainer.contracts.tenants import DEFAULT_TENANT
from sparktrainer.registry.concern import Concern
from sparktrainer.registry.rows import Row, iso

DDL = """
CREATE TABLE IF NOT EXISTS queue (
    job_id TEXT PRIMARY KEY,
    resource_class TEXT NOT NULL,
    priority TEXT NOT NULL,
    topic TEXT NOT NULL,
    sweep_id TEXT,
    validated_at TEXT NOT NULL,
    tenant TEXT NOT NULL DEFAULT 'default',
    gpus INTEGER NOT NULL DEFAULT 0
);
CREATE TABLE IF NOT EXISTS trainers (
    trainer_id TEXT PRIMARY KEY,
    grp TEXT NOT NULL,
    classes TEXT NOT NULL,
    gpus INTEGER NOT NULL,
    gpu_memory_gib REAL NOT NULL,
    devices TEXT NOT NULL,
    running_job_id TEXT,
    every_s REAL NOT NULL,
    stopping INTEGER NOT NULL,
    seen_at TEXT NOT NULL,
    running_tenant TEXT,
    running_class TEXT,
    running_gpus INTEGER NOT NULL DEFAULT 0
);
"""
MISSED_BEATS = 3  # a trainer silent for this many heartbeat intervals is gone
MAX_INTERVAL_S = 300.0  # a heartbeat claiming a longer interval is held to this one


def _route(conn: sqlite3.Connection, ev: JobValidated) -> None:
    """The job waits on its route's topic; a later verdict (a re-drive) replaces the route."""
    conn.execute(
        "INSERT INTO queue (job_id, resource_class, priority, topic, sweep_id, validated_at, "
        "tenant, gpus) VALUES (?, ?, ?, ?, ?, ?, ?, ?) ON CONFLICT (job_id) DO UPDATE SET "
        "resource_class = excluded.resource_class, priority = excluded.priority, "
        "tenant = excluded.tenant, gpus = excluded.gpus, "
        "topic = excluded.topic, sweep_id = excluded.sweep_id, "
        "validated_at = excluded.validated_at WHERE excluded.validated_at >= validated_at",
        (
            ev.job_id,
            ev.resource_class,
            ev.priority,
            ev.home_topic(),
            ev.sweep_id,
            iso(ev.validated_at),
            ev.tenant,
            ev.resources.gpus,
        ),
    )


def _heartbeat(conn: sqlite3.Connection, ev: TrainerHeartbeat) -> None:
    """The trainer's latest heartbeat (an older one, redelivered, changes nothing)."""
    conn.execute(
        "INSERT INTO trainers VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?) "
        "ON CONFLICT (trainer_id) "
        "DO UPDATE SET grp = excluded.grp, classes = excluded.classes, gpus = excluded.gpus, "
        "gpu_memory_gib = excluded.gpu_memory_gib, devices = excluded.devices, "
        "running_job_id = excluded.running_job_id, every_s = excluded.every_s, "
        "stopping = excluded.stopping, seen_at = excluded.seen_at, "
        "running_tenant = excluded.running_tenant, running_class = excluded.running_class, "
        "running_gpus = excluded.running_gpus "
        "WHERE excluded.seen_at >= seen_at",
        (
            ev.trainer_id,
            ev.group,
            json.dumps(ev.classes),
            ev.gpus,
            ev.gpu_memory_gib,
            json.dumps(ev.devices),
            ev.running_job_id,
            ev.every_s,
            int(ev.stopping),
            iso(ev.at),
            ev.running_tenant,
            ev.running_class,
            ev.running_gpus,
        ),
    )


QUEUE = Concern(
    name="queue",
    version=2,
    ddl=DDL,
    topics=(*t.VALIDATED_TOPICS, t.TRAINERS),
    folds={JobValidated: _route, TrainerHeartbeat: _heartbeat},
)


# --- queries -------------------------------------------------------------------------------


def _ms(text: str) -> int:
    return int(datetime.fromisoformat(text).timestamp() * 1000)


def live_trainers(conn: sqlite3.Connection, now: datetime) -> list[Row]:
    """Trainers heard from within MISSED_BEATS intervals that have not said they stop."""
    live = []
    for r in conn.execute("SELECT * FROM trainers ORDER BY trainer_id").fetchall():
        silent_s = (now - datetime.fromisoformat(r["seen_at"])).total_seconds()
        if not r["stopping"] and silent_s <= MISSED_BEATS * min(r["every_s"], MAX_INTERVAL_S):
            live.append(
                {
                    **dict(r),
                    "classes": json.loads(r["classes"]),
                    "devices": json.loads(r["devices"]),
                    "silent_s": round(silent_s, 1),
                }
            )
    return live


def _waiting(conn: sqlite3.Connection) -> list[sqlite3.Row]:
    return conn.execute(
        "SELECT q.*, j.name FROM queue q JOIN jobs j USING (job_id) WHERE j.status = 'validated'"
    ).fetchall()


@dataclass(frozen=True)
class Clock:
    """What ordering a queue needs: now, and the trainers' aging settings."""

    now_ms: int
    aging_s: float
    priorities: bool

    def order(self, r: sqlite3.Row) -> tuple[int, int, int, tuple[str, int, int]]:
        """The trainers' pick order of a waiting job (contracts/scheduling.py)."""
        waiting = Waiting(
            r["priority"], r["resource_class"], _ms(r["validated_at"]), (r["topic"], 0, 0)
        )
        return waiting.order(self.now_ms, self.aging_s, self.priorities)

    def entry(self, position: int, r: sqlite3.Row) -> Row:
        """A waiting job as the queue view lists it."""
        waited_s = max(0, self.now_ms - _ms(r["validated_at"])) / 1000
        level = effective_level(r["priority"], waited_s, self.aging_s, self.priorities)
        return {"position": position, "job_id": r["job_id"], "name": r["name"],
                "priority": r["priority"], "effective_priority": PRIORITIES[level],
                "waited_s": round(waited_s, 1), "topic": r["topic"],
                "sweep_id": r["sweep_id"], "tenant": r["tenant"]}  # fmt: skip


def _class_view(
    name: str, rows: list[sqlite3.Row], trainers: list[Row], clock: Clock, fair: FairShare,
    ledger: Ledger,
) -> Row:  # fmt: skip
    """One class: its waiting jobs in pick order, its trainers, why it waits if none serves."""
    serving = [tr["trainer_id"] for tr in trainers if name in tr["classes"]]
    mine = sorted((r for r in rows if r["resource_class"] == name), key=clock.order)
    reason = None
    if not serving:
        seen = "; ".join(f"{tr['trainer_id']} serves {', '.join(tr['classes'])}" for tr in trainers)
        reason = (
            f"no live trainer serves class '{name}' (none has sent a heartbeat on "
            f"{t.TRAINERS} lately){': live trainers: ' + seen if seen else ''}"
        )
    waiting = [clock.entry(n, r) for n, r in enumerate(mine, start=1)]
    for w, r in zip(waiting, mine, strict=True):
        why = None if serving else f"no trainer serves {name}"
        w["why"] = why or fair.why_waiting(_candidate(r), ledger)
    return {"class": name, "trainers": serving, "waiting": waiting, "reason": reason}


def _candidate(r: sqlite3.Row) -> Candidate:
    waiting = Waiting(r["priority"], r["resource_class"], _ms(r["validated_at"]))
    return Candidate(waiting, r["tenant"], r["gpus"])


def fleet_ledger(trainers: list[Row]) -> Ledger:
    """Who runs what, from the live trainers' heartbeats (as each trainer folds them)."""
    ledger = Ledger(trainers=max(1, len(trainers)), gpus=sum(tr["gpus"] for tr in trainers))
    for tr in trainers:
        if tr["running_job_id"] and tr["running_tenant"] and tr["running_class"]:
            ledger.hold(tr["running_tenant"], tr["running_class"], tr["running_gpus"])
    return ledger


def window_usage(
    conn: sqlite3.Connection, ledger: Ledger, now: datetime, window_s: float, trainers: list[Row]
) -> Ledger:
    """The trainers' share over a window, from the read model: each ended attempt's usage
    (placed at [ended - wall_s, ended]) and each live trainer's running job since it started,
    charged at least the mean ended run (of any class: the read model keeps no attempt's)."""
    if window_s <= 0:
        return ledger
    runs = UsageWindow(window_s)
    rows = conn.execute(
        "SELECT u.job_id, u.attempt, u.ended_at, u.wall_s, u.gpus, j.tenant FROM attempt_usage u "
        "LEFT JOIN jobs j USING (job_id) WHERE u.ended_at >= ? ORDER BY u.ended_at",
        (iso(now - timedelta(seconds=window_s)),),
    )
    for r in rows:
        end_s, key = datetime.fromisoformat(r["ended_at"]).timestamp(), f"{r[0]}#{r[1]}"
        runs.start(key, r["tenant"] or DEFAULT_TENANT, "", r["gpus"], end_s - r["wall_s"])
        runs.end(key, end_s)
    for tr in trainers:
        started = conn.execute(
            "SELECT status_at FROM jobs WHERE job_id = ? AND status = 'running'",
            (tr["running_job_id"],),
        ).fetchone()
        if started is not None and tr["running_tenant"]:
            at_s = datetime.fromisoformat(started[0]).timestamp()
            runs.start(tr["trainer_id"], tr["running_tenant"], "", tr["running_gpus"], at_s)
    return runs.fill(ledger, now.timestamp())


def _tenants(fair: FairShare, ledger: Ledger) -> list[Row]:
    """Each tenant seen or configured: its weight, cohort, dominant share, usage and quota."""
    names = sorted({*fair.shares, *(t for t, _ in ledger.jobs_held)})
    out = []
    for name in names:
        share = fair.share(name)
        classes = []
        for c in CLASSES:
            jobs, gpus = ledger.held([name], c.name)
            q = share.quota(c.name)
            classes.append({"class": c.name, "running_jobs": jobs, "gpus": gpus,
                            "quota_jobs": q.jobs, "quota_gpus": q.gpus,
                            "borrow_jobs": q.borrow_jobs,
                            "borrow_gpus": q.borrow_gpus})  # fmt: skip
        out.append({"tenant": name, "weight": share.weight, "cohort": share.cohort,
                    "dominant_share": round(ledger.dominant_share(name, share.weight), 4),
                    "classes": classes})  # fmt: skip
    return out


def _running(conn: sqlite3.Connection, trainers: list[Row]) -> list[Row]:
    by_job = {tr["running_job_id"]: tr["trainer_id"] for tr in trainers if tr["running_job_id"]}
    rows = conn.execute(
        "SELECT j.job_id, j.name, j.device, j.worker, j.progress, j.status_at, j.reason, "
        "q.resource_class, q.priority FROM jobs j LEFT JOIN queue q USING (job_id) "
        "WHERE j.status = 'running' ORDER BY j.status_at"
    ).fetchall()
    out = []
    for r in rows:
        progress = json.loads(r["progress"]) if r["progress"] else {}
        trainer = by_job.get(r["job_id"])
        reason = r["reason"] or ""
        out.append(
            {
                "job_id": r["job_id"],
                "name": r["name"],
                "resource_class": r["resource_class"],
                "priority": r["priority"],
                "trainer": trainer,
                # preempted (a trainer's stop, a higher priority) and not started again yet
                "preempted": reason if trainer is None and reason.startswith("preempted") else None,
                "worker": r["worker"],
                "device": r["device"],
                "since": r["status_at"],
                "epoch": progress.get("epoch"),
                "total_epochs": progress.get("total_epochs"),
            }
        )
    return out


def queue_view(
    conn: sqlite3.Connection,
    aging_s: float,
    priorities: bool = True,
    now: datetime | None = None,
    shares: Mapping[str, Share] | None = None,
    fair_window_s: float = 0.0,
) -> dict[str, Any]:
    """Waiting jobs per class in pick order (each with why it waits), running jobs with their
    trainer, the trainers, and each tenant's usage against its quota (``shares``; its share
    over ``fair_window_s``, as the trainers count it, or at the instant with 0)."""
    now = now or datetime.now(UTC)
    trainers = live_trainers(conn, now)
    rows = _waiting(conn)
    clock = Clock(int(now.timestamp() * 1000), aging_s, priorities)
    fair, ledger = FairShare(shares or {}, aging_s, priorities), fleet_ledger(trainers)
    ledger = window_usage(conn, ledger, now, fair_window_s, trainers)
    classes = [_class_view(c.name, rows, trainers, clock, fair, ledger) for c in CLASSES]
    return {
        "as_of": iso(now),
        "aging_s": aging_s,
        "classes": classes,
        "tenants": _tenants(fair, ledger),
        "running": _running(conn, trainers),
        "trainers": trainers,
    }
