"""The fair share over a usage window: trainer-seconds per tenant from runs (contracts/
fairshare.py UsageWindow), folded from the heartbeats (scheduling/usage.py), and the picker's
look-ahead, so a turn one trainer could not see is paid back on a later pick."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

from aiokafka import TopicPartition

from sparktrainer.contracts.fairshare import Candidate, FairShare, Ledger, Share, UsageWindow
from sparktrainer.contracts.schedule_events import TrainerHeartbeat
from sparktrainer.contracts.scheduling import Waiting
from sparktrainer.contracts.topics import validated_topic
from sparktrainer.scheduling.picker import PriorityWaiting
from sparktrainer.scheduling.usage import FleetUsage
from tests.unit.scheduling.test_fair_picker import NOW_MS, rec

NOW = datetime(2026, 12, 7, 3, 0, tzinfo=UTC)


def test_ended_runs_count_within_the_window_and_running_ones_at_least_a_typical_run() -> None:
    w = UsageWindow(window_s=110)
    w.start("t1", "a", "cpu", 0, at_s=0)
    w.end("t1", at_s=50)  # 10 s of it in the window at now=150
    w.start("t1", "b", "gpu", 2, at_s=60)
    w.end("t1", at_s=70)
    w.start("t2", "c", "cpu", 0, at_s=149)  # just started: charged a typical cpu run (50 s)
    w.start("t3", "a", "cpu", 0, at_s=80)  # ran 70 s: longer than typical, charged as run
    ledger = w.fill(Ledger(trainers=3, gpus=2), now_s=150)
    assert ledger.seconds == {"a": 10 + 70, "b": 10, "c": 50}
    assert ledger.gpu_seconds == {"b": 20}
    w.end("t2", at_s=151)
    assert w.fill(Ledger(), now_s=260).seconds == {"a": 260 - 150, "c": 1}


def test_old_runs_leave_the_window_and_ending_a_key_without_a_run_is_nothing() -> None:
    w = UsageWindow(window_s=10, max_runs=2)
    w.end("nobody", at_s=1)
    for i in range(3):
        w.start("t", "a", "cpu", 0, at_s=i * 2)
        w.end("t", at_s=i * 2 + 1)
    assert w.fill(Ledger(), now_s=5).seconds == {"a": 2}  # the oldest of three is not kept
    assert w.fill(Ledger(), now_s=100).seconds == {}


def test_over_a_window_the_tenant_that_ran_less_per_weight_goes_first() -> None:
    fair = FairShare({"a": Share(2.0), "b": Share(1.0)}, aging_s=60)
    cands = [
        Candidate(Waiting("normal", "cpu", NOW_MS, ("t", 0, i)), t) for i, t in enumerate("ab")
    ]
    ledger = Ledger(trainers=2, window_s=100, seconds={"a": 90, "b": 50})
    assert fair.pick(cands, ledger, NOW_MS) == 0  # 90 / 200 over weight 2 < 50 / 200 over 1
    ledger.seconds["a"] = 110
    assert fair.pick(cands, ledger, NOW_MS) == 1
    # Without a window the share is the instant's: no one runs, the heavier weight goes first.
    assert fair.pick(cands, Ledger(trainers=2, seconds={"a": 110}), NOW_MS) == 0


def beat(trainer: str, job: str | None, tenant: str | None, at_s: float) -> TrainerHeartbeat:
    return TrainerHeartbeat(trainer_id=trainer, group="g", classes=["cpu"], every_s=10,
                            running_job_id=job, running_tenant=tenant,
                            running_class="cpu" if job else None,
                            at=NOW + timedelta(seconds=at_s))  # fmt: skip


def test_the_fleet_folds_runs_from_beats_its_own_from_its_state_and_a_silent_ones_end() -> None:
    usage = FleetUsage(me="me", window_s=3600)
    usage.fold(beat("t1", "a-1", "a", 0))
    usage.fold(beat("t1", "a-1", "a", 10))  # the same job: one run
    usage.fold(beat("t1", "b-1", "b", 12))  # another: a's ends, b's starts
    usage.fold(beat("t2", "b-2", "b", 0))  # silent from here: its run ends at this beat
    usage.fold(beat("me", "x-1", "x", 0))  # its own beats read back count not
    at = lambda s: NOW + timedelta(seconds=s)  # noqa: E731
    idle = beat("me", None, None, 0)
    ledger = usage.ledger(at(40), idle)
    assert ledger.trainers == 2 and ledger.seconds == {"a": 12, "b": 28}
    usage.fold(beat("t1", "b-1", "b", 44))
    # Its own job from its own state: just started, charged a typical cpu run (12 and 0: 6).
    assert usage.ledger(at(45), beat("me", "a-9", "a", 0)).seconds == {"a": 12 + 6, "b": 33}
    assert usage.ledger(at(50), idle).seconds == {"a": 12 + 5, "b": 38}


def test_with_tenants_a_partition_is_fetched_on_until_the_lookahead_waits() -> None:
    fair = FairShare({}, aging_s=60)
    w = PriorityWaiting(60, settle_s=0, clock=lambda: NOW_MS, fair=fair, lookahead=3)
    tp = TopicPartition(validated_topic("cpu", "normal"), 0)
    for i in range(2):
        w.add(rec(f"j{i}", "a", i))
    assert w.to_pause({tp}, 1) == set()
    w.add(rec("j2", "b", 2))
    assert w.to_pause({tp}, 1) == {tp}
    assert PriorityWaiting(60, lookahead=3).lookahead == 1  # one tenant: its first is enough
