"""The trainer's picker with tenants: each tenant's first record of a partition competes by the
fair share over the fleet's usage, folded from the heartbeats (scheduling/usage.py)."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

from sparktrainer.contracts.envelope import encode
from sparktrainer.contracts.events import JobValidated
from sparktrainer.contracts.fairshare import FairShare, Ledger, Quota, Share
from sparktrainer.contracts.records import Received
from sparktrainer.contracts.schedule_events import TrainerHeartbeat
from sparktrainer.contracts.topics import validated_topic
from sparktrainer.scheduling.picker import PriorityWaiting
from sparktrainer.scheduling.usage import FleetUsage

NOW = datetime(2026, 12, 7, 3, 0, tzinfo=UTC)
NOW_MS = int(NOW.timestamp() * 1000)
MLP = {"input_size": 4, "output_size": 2}


def rec(job_id: str, tenant: str, offset: int, age_s: float = 0) -> Received:
    job = JobValidated(job_id=job_id, name=job_id, type="train", framework="pytorch",
                       config_kind="pytorch.mlp", config=MLP, tenant=tenant,
                       validated_at=NOW - timedelta(seconds=age_s))  # fmt: skip
    out = encode(job, "test")
    ts = NOW_MS - int(age_s * 1000)
    return Received(validated_topic("cpu", "normal"), 0, offset, out.key, out.value,
                    tuple(out.headers), ts)  # fmt: skip


def beat(trainer: str, job: str | None, tenant: str | None, age_s: float = 0) -> TrainerHeartbeat:
    return TrainerHeartbeat(trainer_id=trainer, group="g", classes=["cpu"], every_s=10,
                            running_job_id=job, running_tenant=tenant,
                            running_class="cpu" if job else None,
                            at=NOW - timedelta(seconds=age_s))  # fmt: skip


def test_a_tenant_behind_another_in_one_partition_is_reached_by_the_fair_share() -> None:
    usage = FleetUsage(me="me")
    usage.fold(beat("t1", "a-1", "a"))
    usage.fold(beat("t2", "a-2", "a"))
    fair = FairShare({"a": Share(1.0), "b": Share(1.0)}, aging_s=60)
    mine = beat("me", None, None)
    w = PriorityWaiting(60, settle_s=0, clock=lambda: NOW_MS, fair=fair,
                        ledger=lambda: usage.ledger(NOW, mine))  # fmt: skip
    for i, (job, tenant) in enumerate([("a-3", "a"), ("a-4", "a"), ("b-1", "b")]):
        w.add(rec(job, tenant, i, age_s=10 - i))
    taken = w.take()
    assert taken is not None and taken.offset == 2  # b runs nothing: it goes before a's older
    assert [r.offset for r in iter(w.take, None)] == [0, 1]  # then a's, in partition order


def test_over_quota_waits_and_a_stale_or_stopping_trainer_counts_no_more() -> None:
    usage = FleetUsage(me="me")
    usage.fold(beat("t1", "a-1", "a"))
    fair = FairShare({"a": Share(quotas={"cpu": Quota(jobs=1)})}, aging_s=60)
    mine = beat("me", None, None)
    w = PriorityWaiting(60, settle_s=0, clock=lambda: NOW_MS, fair=fair,
                        ledger=lambda: usage.ledger(NOW, mine))  # fmt: skip
    w.add(rec("a-2", "a", 0))
    assert w.take() is None and len(w) == 1  # tenant over quota: t1 runs its one job
    usage.fold(beat("t1", "a-1", "a", age_s=-1).model_copy(update={"stopping": True}))
    assert w.take() is not None


def test_the_usage_view_keeps_the_latest_beat_and_ages_out_silent_trainers() -> None:
    usage = FleetUsage(me="me")
    usage.fold(beat("t1", "a-1", "a", age_s=5))
    usage.fold(beat("t1", None, None, age_s=20))  # older: ignored
    usage.fold(beat("t2", "b-1", "b", age_s=31))  # silent for more than 3 x 10 s
    ledger = usage.ledger(NOW, beat("me", "c-1", "c"))
    assert ledger.trainers == 2
    assert ledger.held(["a"], "cpu") == (1, 0) and ledger.held(["b"], "cpu") == (0, 0)
    assert ledger.held(["c"], "cpu") == (1, 0)  # this trainer's own job, from its own state
    assert isinstance(ledger, Ledger)
