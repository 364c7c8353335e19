"""The usage concern: attempts' usage folded into a real SQLite read model, summed per job,
tenant, class and day; the Prometheus counters of the same figures."""

from __future__ import annotations

import sqlite3
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from sparktrainer.contracts.events import (
    JobCancelled,
    JobCompleted,
    JobFailed,
    JobPreempted,
    JobValidated,
)
from sparktrainer.contracts.usage import AttemptUsage
from sparktrainer.registry.fold import Folded, apply_many
from sparktrainer.registry.store import connect
from sparktrainer.registry.usage import job_usage, tenant_usage
from sparktrainer.services.trainer_metrics import OTHER_TENANT, TrainerObserver

DAY1 = datetime(2026, 12, 6, 23, 0, tzinfo=UTC)
DAY2 = DAY1 + timedelta(hours=2)  # the next UTC day
MLP = {"input_size": 4, "output_size": 2}


@pytest.fixture
def conn(tmp_path: Path) -> sqlite3.Connection:
    return connect(tmp_path / "r.db")


def fold(conn: sqlite3.Connection, *events: object) -> None:
    start = conn.execute("SELECT count(*) FROM offsets").fetchone()[0] * 1000
    apply_many(conn, [Folded(f"topic-{i}", 0, start + i, e) for i, e in enumerate(events)])


def validated(job_id: str, tenant: str, cls: str = "cpu", gpus: int = 0) -> JobValidated:
    return JobValidated(job_id=job_id, name=job_id, type="train", framework="pytorch",
                        config_kind="pytorch.mlp", config=MLP, tenant=tenant,
                        resource_class=cls, resources={"gpus": gpus})  # type: ignore[arg-type]  # fmt: skip


def used(attempt: int, wall_s: float, cpu_s: float, gpus: int = 0) -> AttemptUsage:
    return AttemptUsage(attempt=attempt, wall_s=wall_s, cpu_s=cpu_s, gpus=gpus)


def test_attempts_add_up_per_job_tenant_class_and_day_each_attempt_once(
    conn: sqlite3.Connection,
) -> None:
    retried = [used(1, 10.0, 4.0, gpus=2), used(2, 5.0, 3.0, gpus=2)]  # one end closes both
    fold(conn,
         validated("a1", "alpha", "gpu", gpus=2), validated("a2", "alpha"), validated("b1", "beta"),
         JobPreempted(job_id="a1", attempt=1, reason="stop", at=DAY1, usage=[retried[0]]),
         JobCompleted(job_id="a1", model_id="a1", attempt=2, at=DAY2, usage=retried),
         JobFailed(job_id="a2", reason="r", error_type="E", at=DAY2, usage=[used(1, 7.0, 6.5)]),
         JobCancelled(job_id="b1", at=DAY1, usage=[used(1, 2.0, 1.0)]),
         JobCancelled(job_id="b1", at=DAY1, already_ended="cancelled"),  # no attempt: nothing
         JobCompleted(job_id="orphan", model_id="orphan", at=DAY1, usage=[used(1, 99.0, 9.0)]),
    )  # fmt: skip
    # A trainer re-announcing the stored end (a redelivery, a replay) changes nothing.
    fold(conn, JobCompleted(job_id="a1", model_id="a1", attempt=2, at=DAY2, usage=retried))

    a1 = job_usage(conn, "a1")
    assert [a["attempt"] for a in a1["attempts"]] == [1, 2]
    assert (a1["wall_s"], a1["cpu_s"], a1["gpu_s"]) == (15.0, 7.0, 30.0)
    alpha, beta = tenant_usage(conn, now=DAY2)  # the orphan's job has no verdict: no tenant's
    assert alpha["tenant"] == "alpha" and beta["tenant"] == "beta"
    assert alpha["totals"] == {"attempts": 3, "jobs": 2, "wall_s": 22.0, "cpu_s": 13.5,
                               "gpu_s": 30.0}  # fmt: skip
    assert [(c["class"], c["gpu_s"], c["cpu_s"]) for c in alpha["classes"]] == [
        ("cpu", 0.0, 6.5), ("gpu", 30.0, 7.0)]  # fmt: skip
    days = [(d["day"], d["class"], d["attempts"], d["wall_s"]) for d in alpha["days"]]
    assert days == [("2026-12-06", "gpu", 1, 10.0), ("2026-12-07", "cpu", 1, 7.0),
                    ("2026-12-07", "gpu", 1, 5.0)]  # fmt: skip
    for figure in ("attempts", "wall_s", "cpu_s", "gpu_s"):  # the days add up to the totals
        assert sum(d[figure] for d in alpha["days"]) == alpha["totals"][figure]
    assert beta["totals"]["cpu_s"] == 1.0 and beta["totals"]["attempts"] == 1

    assert tenant_usage(conn, "beta", now=DAY2) == [beta]
    assert tenant_usage(conn, "nobody", now=DAY2) == []
    [today] = tenant_usage(conn, days=1, now=DAY2)  # only 2026-12-07: beta's was the day before
    assert today["tenant"] == "alpha" and today["totals"]["wall_s"] == 12.0


def test_the_trainer_counts_cpu_and_gpu_seconds_by_tenant_and_class_once_per_attempt() -> None:
    observer = TrainerObserver(tenants=["default", "alpha"])
    alpha, stranger = validated("a1", "alpha", "gpu", gpus=1), validated("s1", "zeta")
    end = JobCompleted(job_id="a1", model_id="a1", attempt=2,
                       usage=[used(1, 3.0, 1.5, gpus=1), used(2, 4.0, 2.0, gpus=1)])  # fmt: skip
    observer.observe(alpha, end)
    observer.observe(alpha, end)  # re-announced: counted once
    observer.observe(stranger, JobFailed(job_id="s1", reason="r", error_type="E",
                                         usage=[used(1, 2.0, 0.5)]))  # fmt: skip

    def value(counter: object, tenant: str, cls: str) -> float:
        return counter.labels(tenant, cls)._value.get()  # type: ignore[attr-defined]

    assert value(observer.cpu_seconds, "alpha", "gpu") == 3.5
    assert value(observer.gpu_seconds, "alpha", "gpu") == 7.0
    assert value(observer.cpu_seconds, OTHER_TENANT, "cpu") == 0.5  # not configured: one label
    names = {m.name for c in observer.collectors() for m in c.collect()}  # type: ignore[attr-defined]
    assert {"sparktrainer_trainer_cpu_seconds", "sparktrainer_trainer_gpu_seconds"} <= names
