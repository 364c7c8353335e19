"""The queue and sweeps concerns: folds into a real SQLite read model, and their views."""

from __future__ import annotations

import sqlite3
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from sparktrainer.contracts.events import (
    JobCancelled,
    JobCompleted,
    JobProgress,
    JobStarted,
    JobValidated,
)
from sparktrainer.contracts.schedule_events import (
    SweepEnded,
    SweepValidated,
    TrainerHeartbeat,
    TrialPlanned,
    TrialStopped,
)
from sparktrainer.contracts.sweeps import SweepConfig
from sparktrainer.registry.fold import Folded, apply_many
from sparktrainer.registry.queue import queue_view
from sparktrainer.registry.store import connect
from sparktrainer.registry.sweeps import best_first, get_sweep, list_sweeps

T0 = datetime(2026, 1, 1, tzinfo=UTC)
MLP = {"input_size": 4, "output_size": 2}


@pytest.fixture
def conn(tmp_path: Path) -> sqlite3.Connection:
    return connect(tmp_path / "r.db")


def fold(conn: sqlite3.Connection, *events: object) -> None:
    start = conn.execute("SELECT count(*) FROM offsets").fetchone()[0] * 1000
    batch = [Folded("any-topic-" + str(i), 0, start + i, e) for i, e in enumerate(events)]
    apply_many(conn, batch)


def validated(job_id: str, cls: str, priority: str, at: datetime) -> JobValidated:
    return JobValidated(job_id=job_id, name=job_id, type="train", framework="pytorch",
                        config_kind="pytorch.mlp", config=MLP, resource_class=cls,
                        priority=priority, validated_at=at)  # fmt: skip


def beat(trainer: str, classes: list[str], at: datetime, **kw: object) -> TrainerHeartbeat:
    return TrainerHeartbeat(trainer_id=trainer, group="g", classes=classes, every_s=10, at=at,
                            **kw)  # type: ignore[arg-type]  # fmt: skip


def test_waiting_jobs_are_listed_in_the_trainers_pick_order_with_a_reason_when_unserved(
    conn: sqlite3.Connection,
) -> None:
    fold(conn,
         validated("old-low", "gpu", "low", T0),
         validated("new-high", "gpu", "high", T0 + timedelta(seconds=50)),
         validated("normal", "gpu", "normal", T0 + timedelta(seconds=10)),
         validated("big", "multi-gpu", "normal", T0),
         validated("runs", "gpu", "normal", T0),
         JobStarted(job_id="runs", name="r", framework="pytorch", config_kind="pytorch.mlp",
                    device="cuda:0", worker="host/2", total_epochs=3),
         beat("host/1", ["gpu"], T0 + timedelta(seconds=55), running_job_id="runs"),
         beat("gone/9", ["multi-gpu"], T0 - timedelta(seconds=600)))  # fmt: skip
    view = queue_view(conn, aging_s=1000.0, now=T0 + timedelta(seconds=60))
    gpu = next(c for c in view["classes"] if c["class"] == "gpu")
    assert [w["job_id"] for w in gpu["waiting"]] == ["new-high", "normal", "old-low"]
    assert [w["position"] for w in gpu["waiting"]] == [1, 2, 3] and gpu["trainers"] == ["host/1"]
    big = next(c for c in view["classes"] if c["class"] == "multi-gpu")
    assert big["waiting"][0]["job_id"] == "big" and big["trainers"] == []
    assert "no live trainer serves class 'multi-gpu'" in big["reason"]
    assert "host/1 serves gpu" in big["reason"]  # the one that is alive, not the silent one
    [running] = view["running"]
    assert running["job_id"] == "runs" and running["trainer"] == "host/1"
    assert running["resource_class"] == "gpu" and running["device"] == "cuda:0"
    aged = queue_view(conn, aging_s=30.0, now=T0 + timedelta(seconds=60))
    order = [
        w["job_id"] for w in next(c for c in aged["classes"] if c["class"] == "gpu")["waiting"]
    ]
    assert order == ["old-low", "normal", "new-high"]  # aged to the top: the oldest first


def test_a_preempted_job_shows_as_preempted_until_a_trainer_runs_it_and_in_its_history(
    conn: sqlite3.Connection,
) -> None:
    from sparktrainer.contracts.events import JobPreempted
    from sparktrainer.registry.job_details import job_details

    started = JobStarted(job_id="low", name="l", framework="pytorch", config_kind="pytorch.mlp",
                         device="cpu", worker="host/2", total_epochs=3)  # fmt: skip
    gave_way = JobPreempted(job_id="low", attempt=1, reason="gave way to a high-priority job",
                            step=5)  # fmt: skip
    fold(conn, validated("low", "gpu", "low", T0), started, gave_way)
    [running] = queue_view(conn, aging_s=60, now=T0 + timedelta(seconds=9))["running"]
    assert running["trainer"] is None
    assert running["preempted"] == "preempted at step 5: gave way to a high-priority job"
    fold(conn, beat("host/1", ["gpu"], T0 + timedelta(seconds=8), running_job_id="low"))
    [again] = queue_view(conn, aging_s=60, now=T0 + timedelta(seconds=9))["running"]
    assert again["trainer"] == "host/1" and again["preempted"] is None
    [history] = job_details(conn, "low")["preemptions"]  # the job's page keeps each one
    assert history["attempt"] == 1 and history["step"] == 5 and "high-priority" in history["reason"]


def test_a_stopping_heartbeat_takes_the_trainer_out(conn: sqlite3.Connection) -> None:
    fold(conn, beat("host/1", ["gpu"], T0), beat("host/1", ["gpu"], T0 + timedelta(seconds=1),
                                                 stopping=True))  # fmt: skip
    view = queue_view(conn, aging_s=60, now=T0 + timedelta(seconds=2))
    assert view["trainers"] == []
    fold(conn, beat("host/1", ["gpu"], T0))  # a late, older heartbeat changes nothing
    assert queue_view(conn, aging_s=60, now=T0 + timedelta(seconds=2))["trainers"] == []


def test_a_sweep_shows_its_trials_with_their_metric_and_the_best_first(
    conn: sqlite3.Connection,
) -> None:
    config = SweepConfig.model_validate({
        "base": {"type": "train", "framework": "pytorch", "config": MLP},
        "space": {"learning_rate": {"type": "choice", "values": [0.1, 0.01, 1e-6]}},
        "sampler": "grid", "max_trials": 3,
    })  # fmt: skip
    sweep = SweepValidated(sweep_id="sw", name="s", framework="pytorch", config=config, trials=3)
    plans = [TrialPlanned(sweep_id="sw", trial=n, job_id=f"sw-t00{n}",
                          params={"learning_rate": lr})
             for n, lr in enumerate([0.1, 0.01, 1e-6], start=1)]  # fmt: skip
    fold(conn, sweep, *plans,
         JobCompleted(job_id="sw-t001", model_id="sw-t001", metrics={"val_loss": 0.4}),
         JobCompleted(job_id="sw-t002", model_id="sw-t002", metrics={"val_loss": 0.3}),
         JobProgress(job_id="sw-t003", epoch=1, total_epochs=4, step=1, total_steps=4,
                     val_loss=2.2),
         TrialStopped(sweep_id="sw", trial=3, job_id="sw-t003", rule="median", epoch=1,
                      reason="worse than the median"),
         JobCancelled(job_id="sw-t003", reason="early stopping"),
         SweepEnded(sweep_id="sw", status="completed", best_trial=2, model_id="sw"))  # fmt: skip
    found = get_sweep(conn, "sw")
    assert found is not None and found["status"] == "validated"  # its lifecycle is elsewhere
    table = found["trial_table"]
    assert [(r["trial"], r["status"], r["val_loss"]) for r in table] == [
        (1, "completed", 0.4), (2, "completed", 0.3), (3, "stopped", 2.2),
    ]  # fmt: skip
    assert table[2]["stopped"]["rule"] == "median"
    assert [r["trial"] for r in best_first(found)] == [2, 1]
    assert found["ended"]["best_trial"] == 2
    [listed] = list_sweeps(conn).items
    assert listed["planned"] == 3 and listed["metric"] == "val_loss"


def test_the_queue_view_shows_each_tenants_usage_quota_and_why_a_job_waits(
    conn: sqlite3.Connection,
) -> None:
    from sparktrainer.contracts.fairshare import Quota, Share

    t0 = datetime(2026, 12, 7, 3, 0, tzinfo=UTC)
    job_a = validated("a-2", "cpu", "normal", t0).model_copy(update={"tenant": "team-a"})
    job_b = validated("b-1", "gpu", "normal", t0)
    fold(conn, job_a, job_b,
         beat("tr-1", ["cpu"], t0, running_job_id="a-1", running_tenant="team-a",
              running_class="cpu"))  # fmt: skip
    shares = {"team-a": Share(2.0, None, {"cpu": Quota(jobs=1)})}
    view = queue_view(conn, 300, now=t0 + timedelta(seconds=1), shares=shares)
    why = {w["job_id"]: w["why"] for c in view["classes"] for w in c["waiting"]}
    assert why == {"a-2": "tenant over quota", "b-1": "no trainer serves gpu"}
    team_a = next(t for t in view["tenants"] if t["tenant"] == "team-a")
    cpu = next(q for q in team_a["classes"] if q["class"] == "cpu")
    assert (team_a["weight"], cpu["running_jobs"], cpu["quota_jobs"]) == (2.0, 1, 1)


def test_the_queue_view_counts_each_tenants_share_over_the_window_as_the_trainers_do(
    conn: sqlite3.Connection,
) -> None:
    from sparktrainer.contracts.fairshare import Share
    from sparktrainer.contracts.usage import AttemptUsage

    t0 = datetime(2026, 12, 7, 3, 0, tzinfo=UTC)
    team = lambda e, t: e.model_copy(update={"tenant": t})  # noqa: E731
    start = lambda j, at: JobStarted(job_id=j, name=j, framework="pytorch",  # noqa: E731
                                     config_kind="pytorch.mlp", device="cpu", worker="w",
                                     total_epochs=1, at=at)  # fmt: skip
    fold(conn, team(validated("a-1", "cpu", "normal", t0), "team-a"),
         team(validated("b-1", "cpu", "normal", t0), "team-b"),
         start("a-1", t0),
         JobCompleted(job_id="a-1", model_id="a-1", at=t0 + timedelta(seconds=30),
                      usage=[AttemptUsage(attempt=1, wall_s=30.0, cpu_s=1.0)]),
         start("b-1", t0 + timedelta(seconds=50)),
         beat("tr-1", ["cpu"], t0 + timedelta(seconds=55), running_job_id="b-1",
              running_tenant="team-b", running_class="cpu"))  # fmt: skip
    shares = {"team-a": Share(3.0), "team-b": Share(1.0)}
    now = t0 + timedelta(seconds=60)
    windowed = queue_view(conn, 300, now=now, shares=shares, fair_window_s=100)
    share = {t["tenant"]: t["dominant_share"] for t in windowed["tenants"]}
    # b's job has run 10 s: charged a typical run (a's 30 s), as the trainers charge it.
    assert share == {"team-a": round(30 / 100 / 3, 4), "team-b": round(30 / 100, 4)}
    instant = queue_view(conn, 300, now=now, shares=shares)
    assert {t["tenant"]: t["dominant_share"] for t in instant["tenants"]} == {
        "team-a": 0.0,
        "team-b": 1.0,
    }
    gone = queue_view(conn, 300, now=now + timedelta(seconds=90), shares=shares, fair_window_s=100)
    assert {t["tenant"]: t["dominant_share"] for t in gone["tenants"]}["team-a"] == 0.0
