"""Partition offset bookkeeping (bus/offsets.py): the state machine, without a broker."""

from __future__ import annotations

from aiokafka import TopicPartition

from sparktrainer.bus.offsets import PartitionOffsets

TP = TopicPartition("t", 0)
OTHER = TopicPartition("t", 1)


def run(offsets: PartitionOffsets, tp: TopicPartition, *ns: int) -> None:
    """Accept, start and finish each offset (a record handled to the end)."""
    for n in ns:
        assert offsets.accept(tp, n) and offsets.start(tp, n)
        offsets.finish(tp, n)


def test_first_fetched_record_sets_the_base() -> None:
    offsets = PartitionOffsets()
    assert TP not in offsets and offsets.base(TP) is None
    assert offsets.accept(TP, 10)
    assert TP in offsets and offsets.base(TP) == 10
    assert offsets.committable() == {}  # nothing done yet: nothing to commit


def test_commits_only_the_contiguous_done_prefix() -> None:
    offsets = PartitionOffsets()
    for n in (10, 11, 12, 13, 14):
        assert offsets.accept(TP, n) and offsets.start(TP, n)
    offsets.finish(TP, 11)
    offsets.finish(TP, 12)
    assert offsets.committable() == {}  # 10 still in flight
    offsets.finish(TP, 10)
    assert offsets.committable() == {TP: 13}  # offset + 1 of the last contiguous done record
    assert offsets.committable() == {}  # reported once
    offsets.finish(TP, 14)
    assert offsets.committable() == {}
    offsets.finish(TP, 13)
    assert offsets.committable() == {TP: 15}


def test_a_refetched_record_is_refused() -> None:
    offsets = PartitionOffsets()
    run(offsets, TP, 5, 6)
    assert offsets.accept(TP, 7) and offsets.start(TP, 7)
    assert not offsets.accept(TP, 6)  # done, not committed yet
    assert not offsets.accept(TP, 7)  # in flight
    offsets.committable()
    assert not offsets.accept(TP, 5)  # below the base: committed
    assert offsets.accept(TP, 8)  # new


def test_a_waiting_record_is_not_tracked() -> None:
    offsets = PartitionOffsets()
    assert offsets.accept(TP, 3)
    assert offsets.accept(TP, 3)  # accepted but never started: handed out again is fine


def test_forgotten_partition_drops_its_state_and_starts_over() -> None:
    offsets = PartitionOffsets()
    run(offsets, TP, 0, 1)
    run(offsets, OTHER, 0)
    assert offsets.accept(TP, 2)
    offsets.forget([TP])
    assert offsets.tracked() == {OTHER}
    assert not offsets.start(TP, 2)  # revoked while waiting: not started
    offsets.finish(TP, 1)  # a late finish of a forgotten partition changes nothing
    assert offsets.committable() == {OTHER: 1}
    assert offsets.accept(TP, 0) and offsets.base(TP) == 0  # refetched from the group's commit


def test_finish_of_an_offset_never_started_is_ignored() -> None:
    offsets = PartitionOffsets()
    assert offsets.accept(TP, 0)
    offsets.finish(TP, 0)
    assert offsets.committable() == {}


def test_partitions_are_independent_and_repr_shows_them() -> None:
    offsets = PartitionOffsets()
    run(offsets, TP, 0, 1, 2)
    run(offsets, OTHER, 40)
    assert offsets.committable() == {TP: 3, OTHER: 41}
    assert "t/0" in repr(offsets) and "t/1" in repr(offsets)
