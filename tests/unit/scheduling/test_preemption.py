"""Priority preemption (issue 18 item 2): the rule, what the picker would take were the running
job waiting again (no loop), the per-job bound, and a given-back record waiting again."""

from __future__ import annotations

from aiokafka import TopicPartition

from sparktrainer.bus.offsets import PartitionOffsets
from sparktrainer.contracts.preemption import PreemptionRule
from sparktrainer.contracts.scheduling import Waiting
from sparktrainer.errors import StorageError
from sparktrainer.scheduling.preempting import Preemptions
from sparktrainer.settings import Settings
from tests.unit.scheduling.test_picker import NOW, order, picker, rec

RULE = PreemptionRule(after_s=60.0, max_per_job=2, window_s=3600.0)


def waiting(priority: str, waited_s: float) -> Waiting:
    return Waiting(priority, "gpu", NOW - int(waited_s * 1000), ("t", 0, 7))


def test_only_a_strictly_higher_priority_that_waited_long_enough_preempts() -> None:
    low = waiting("low", 0)
    assert RULE.verdict(low, waiting("high", 59), [], NOW) is None  # not yet
    why = RULE.verdict(low, waiting("high", 61), [], NOW)
    assert why is not None and "gave way to a high-priority job (t/0@7)" in why
    assert "preemption 1 of at most 2 in 3600 s" in why
    assert RULE.verdict(low, waiting("normal", 61), [], NOW) is not None
    assert RULE.verdict(waiting("high", 0), waiting("high", 6000), [], NOW) is None  # equal
    assert RULE.verdict(waiting("normal", 0), waiting("low", 6000), [], NOW) is None  # lower
    assert RULE.verdict(low, None, [], NOW) is None


def test_a_job_is_preempted_at_most_n_times_per_window() -> None:
    low, high = waiting("low", 0), waiting("high", 61)
    assert RULE.verdict(low, high, [NOW - 10_000, NOW - 20_000], NOW) is None
    assert RULE.verdict(low, high, [NOW - 3_600_001, NOW - 20_000], NOW) is not None  # one aged out


def test_the_settings_give_the_rule_or_none() -> None:
    assert PreemptionRule.from_settings(Settings()) == PreemptionRule(300.0, 2, 3600.0)
    assert PreemptionRule.from_settings(Settings(preempt_after_s=0)) is None
    assert PreemptionRule.from_settings(Settings(preempt_max_per_job=0)) is None


def test_the_picker_says_what_it_would_take_were_the_running_job_waiting_again() -> None:
    w, _ = picker(aging_s=60.0)
    running = rec("gpu", "low", 0, NOW - 600_000)  # a low job aged 10 minutes: high by now
    w.add(rec("gpu", "low", 1, NOW - 1_000))  # behind it in its partition
    assert w.would_take_over(running) is None  # nothing better waits
    fresh_high = rec("gpu", "high", 0, NOW - 1_000, partition=3)
    w.add(fresh_high)
    assert w.would_take_over(running) is None  # the aged job would be picked back: no loop
    w2, _ = picker(aging_s=0.0)  # no aging: the high job wins and the low one gives way
    w2.add(fresh_high)
    assert w2.would_take_over(running) is fresh_high
    assert order(w) == [0, 1] and len(w) == 0  # asking changed nothing: the running one is out


def test_a_job_that_ran_keeps_the_age_it_had_at_its_start_not_its_run_time() -> None:
    w, clock = picker(aging_s=60.0)
    low = rec("gpu", "low", 0, NOW - 1_000)
    w.add(low)
    assert w.take() is low
    clock.ms += 600_000  # it ran 10 minutes: by its timestamp it would be high by now
    assert w.requeued(low).since_ms == NOW - 1_000 + 600_000  # it had waited 1 s
    high = rec("gpu", "high", 0, clock.ms - 1_000, partition=2)
    w.add(high)
    assert w.would_take_over(low) is high  # so a fresh high job wins, and it gives way
    w.put_back(low)
    assert w.waiting(low).since_ms == NOW - 1_000 + 600_000
    assert w.take() is high and w.take() is low


def test_a_given_back_record_heads_its_partition_again_and_waits_uncommitted() -> None:
    w, _ = picker()
    first, second = rec("gpu", "low", 5, NOW - 9_000), rec("gpu", "low", 6, NOW - 1_000)
    w.add(second)
    w.put_back(first)
    assert order(w) == [5, 6]
    offsets, tp = PartitionOffsets(), TopicPartition(first.topic, 0)
    assert offsets.accept(tp, 5) and offsets.start(tp, 5)
    offsets.give_back(tp, 5)
    assert offsets.committable() == {} and offsets.accept(tp, 5)  # waiting again, not done
    offsets.start(tp, 5)
    offsets.finish(tp, 5)
    assert offsets.committable() == {tp: 6}


def test_the_trainer_side_records_each_preemption_and_keeps_to_the_bound() -> None:
    w, clock = picker(aging_s=0.0)
    running = rec("gpu", "low", 0, NOW)
    w.add(rec("gpu", "high", 0, NOW - 61_000, partition=1))
    book = Preemptions(PreemptionRule(60.0, max_per_job=1, window_s=100.0), w)
    assert book.check(running, "j0") is not None
    assert book.check(running, "j0") is not None  # asking again counts nothing...
    book.gave_way("j0")  # ...only a job that was asked to give way
    assert book.history["j0"] == [NOW] and book.preempted == 1
    clock.ms += 99_000
    assert book.check(running, "j0") is None  # once per 100 s
    clock.ms += 2_000
    assert book.check(running, "j0") is not None
    book.gave_way("j0")
    assert book.history["j0"] == [clock.ms]  # the one outside the window is forgotten
    assert Preemptions(None, w).check(running, "j0") is None  # preemption off


async def test_a_fresh_trainer_recalls_the_jobs_preemptions_and_keeps_to_the_bound() -> None:
    """The bound is the job's: a trainer that never preempted it reads its attempt record."""
    w, clock = picker(aging_s=0.0)
    running = rec("gpu", "low", 0, NOW)
    w.add(rec("gpu", "high", 0, NOW - 61_000, partition=1))
    rule = PreemptionRule(60.0, max_per_job=1, window_s=100.0)
    stored = {"j0": [NOW - 10_000]}  # another trainer made it give way 10 s ago
    fresh = Preemptions(rule, w, lambda job_id: stored.get(job_id, []))
    assert fresh.check(running, "j0") is not None  # before the recall it knows nothing
    attempt = object()
    await fresh.recall("j0", attempt)
    assert fresh.check(running, "j0") is None and fresh.held == 1  # at its bound
    stored["j0"] = []
    await fresh.recall("j0", attempt)  # once an attempt: not read again
    assert fresh.check(running, "j0") is None
    await fresh.recall("j0", object())  # a record with fewer than it knows: its own stand
    assert fresh.history["j0"] == [NOW - 10_000]
    clock.ms += 91_000
    assert fresh.check(running, "j0") is not None  # out of the window


async def test_when_the_store_cannot_tell_what_the_trainer_knows_stands() -> None:
    w, _ = picker(aging_s=0.0)
    running = rec("gpu", "low", 0, NOW)
    w.add(rec("gpu", "high", 0, NOW - 61_000, partition=1))

    def down(job_id: str) -> list[int]:
        raise StorageError("S3 down")

    book = Preemptions(PreemptionRule(60.0, max_per_job=1, window_s=100.0), w, down)
    book.gave_way("j0")
    await book.recall("j0", object())
    assert book.check(running, "j0") is None and book.history["j0"] == [NOW]
