"""The pick rule on the trainer's waiting records: priority, aging, class, age; and pausing."""

from __future__ import annotations

from aiokafka import TopicPartition

from sparktrainer.contracts.records import Received
from sparktrainer.contracts.topics import validated_topic
from sparktrainer.scheduling.picker import PriorityWaiting

NOW = 1_000_000_000


class Clock:
    def __init__(self) -> None:
        self.ms = NOW

    def __call__(self) -> int:
        return self.ms


def rec(cls: str, priority: str, offset: int, at_ms: int, partition: int = 0) -> Received:
    topic = validated_topic(cls, priority)
    return Received(topic, partition, offset, f"j{offset}".encode(), b"{}", (), at_ms)


def picker(aging_s: float = 60.0, **kw: object) -> tuple[PriorityWaiting, Clock]:
    clock = Clock()
    return PriorityWaiting(aging_s, settle_s=0, clock=clock, **kw), clock  # type: ignore[arg-type]


def order(w: PriorityWaiting) -> list[int]:
    out = []
    while (r := w.take()) is not None:
        out.append(r.offset)
    return out


def test_higher_priority_first_then_older_first() -> None:
    w, _ = picker()
    w.add(rec("gpu", "low", 1, NOW - 5000))
    w.add(rec("gpu", "low", 2, NOW - 4000))
    w.add(rec("gpu", "high", 3, NOW - 10))
    w.add(rec("gpu", "normal", 4, NOW - 100, partition=1))
    assert order(w) == [3, 4, 1, 2]


def test_a_low_job_that_waited_long_enough_goes_before_younger_high_ones() -> None:
    w, _ = picker(aging_s=60.0)
    w.add(rec("gpu", "high", 1, NOW - 1_000))
    w.add(rec("gpu", "low", 2, NOW - 120_001))  # two intervals waited: at the top, and older
    w.add(rec("gpu", "high", 3, NOW - 500_000, partition=1))  # older still: goes first
    assert order(w) == [3, 2, 1]


def test_aging_happens_while_it_waits() -> None:
    w, clock = picker(aging_s=10.0)
    w.add(rec("gpu", "low", 1, NOW))
    w.add(rec("gpu", "high", 2, NOW + 5_000, partition=1))
    assert w.take().offset == 2  # type: ignore[union-attr]
    w.add(rec("gpu", "high", 3, NOW + 15_000, partition=1))
    clock.ms = NOW + 20_000  # the low one has waited two intervals: top level, older
    assert order(w) == [1, 3]


def test_the_more_demanding_class_first_among_equals_and_priorities_can_be_off() -> None:
    w, _ = picker()
    w.add(rec("cpu", "normal", 1, NOW - 9000))
    w.add(rec("gpu", "normal", 2, NOW - 10))
    assert order(w) == [2, 1]
    off, _ = picker(priorities=False)
    off.add(rec("gpu", "high", 1, NOW - 10))
    off.add(rec("gpu", "low", 2, NOW - 9000))
    assert order(off) == [2, 1]  # oldest first


def test_a_partition_stays_in_order_and_is_paused_while_it_has_waiting_records() -> None:
    w, _ = picker()
    w.add(rec("gpu", "low", 5, NOW - 10))
    w.add(rec("gpu", "low", 6, NOW - 9000))  # a later offset never jumps its partition
    tp = TopicPartition(validated_topic("gpu", "low"), 0)
    other = TopicPartition(validated_topic("gpu", "high"), 0)
    assert w.to_pause({tp, other}, 1) == {tp}
    assert order(w) == [5, 6]
    assert w.to_pause({tp, other}, 1) == set()


def test_after_an_assignment_it_settles_before_the_first_pick_and_drops_revoked() -> None:
    clock = Clock()
    w = PriorityWaiting(60.0, settle_s=0.5, clock=clock)
    w.assigned(set())
    w.add(rec("gpu", "low", 1, NOW))
    assert w.take() is None  # other partitions' heads may still be on the way
    clock.ms += 500
    w.add(rec("gpu", "high", 2, NOW, partition=1))
    w.drop({TopicPartition(validated_topic("gpu", "high"), 1)})
    assert len(w) == 1 and order(w) == [1]


def test_a_just_drained_better_partition_is_waited_for_before_a_worse_pick() -> None:
    """A high record skipped at once (unreadable) frees the slot before the next high arrives."""
    clock = Clock()
    w = PriorityWaiting(60.0, settle_s=0.5, clock=clock)
    w.add(rec("gpu", "high", 0, NOW, partition=1))
    w.add(rec("gpu", "low", 5, NOW - 1000))
    assert w.take().offset == 0  # type: ignore[union-attr]
    assert w.take() is None  # the high partition's next record may be on the way
    w.add(rec("gpu", "high", 1, NOW, partition=1))
    assert w.take().offset == 1  # type: ignore[union-attr]
    clock.ms += 500
    assert w.take().offset == 5  # type: ignore[union-attr]  # nothing came: the low one goes


def test_a_drained_partition_of_lower_priority_does_not_hold_a_better_pick() -> None:
    clock = Clock()
    w = PriorityWaiting(60.0, settle_s=0.5, clock=clock)
    w.add(rec("gpu", "low", 0, NOW))
    assert w.take().offset == 0  # type: ignore[union-attr]
    w.add(rec("gpu", "high", 1, NOW, partition=1))
    assert w.take().offset == 1  # type: ignore[union-attr]
