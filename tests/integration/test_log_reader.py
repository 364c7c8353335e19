"""The group-less LogReader against the real broker: positions, bounded reads, key routing."""

from __future__ import annotations

import time

import pytest
from aiokafka import TopicPartition

from sparktrainer.bus.kafka import ensure_topics, make_producer
from sparktrainer.bus.reader import LogReader, log_end_offsets
from sparktrainer.contracts.records import Received
from sparktrainer.settings import Settings

pytestmark = pytest.mark.integration


async def produce(settings: Settings, topic: str, records: list[tuple[bytes, int | None]]):
    """Send ``(key, partition or None)`` records; returns each one's (partition, offset)."""
    producer = make_producer(settings)
    await producer.start()
    try:
        metas = [
            await producer.send_and_wait(topic, b"v-" + key, key=key, partition=partition)
            for key, partition in records
        ]
    finally:
        await producer.stop()
    return [(m.partition, m.offset) for m in metas]


async def read_new(reader: LogReader, count: int, timeout_s: float = 30.0) -> list[Received]:
    """Read until ``count`` records came (fails after ``timeout_s``)."""
    got: list[Received] = []
    deadline = time.monotonic() + timeout_s
    while len(got) < count:
        assert time.monotonic() < deadline, f"only {len(got)} of {count} records came"
        got += await reader.read(timeout_ms=200)
    return got


@pytest.fixture
async def topic(stack: Settings, unique) -> str:
    """A fresh topic: partition 0 holds offsets 0-4, partition 1 offsets 0-1, partition 2 none."""
    name = unique("reader")
    await ensure_topics(stack, (name,))
    await produce(stack, name, [(f"a{i}".encode(), 0) for i in range(5)])
    await produce(stack, name, [(f"b{i}".encode(), 1) for i in range(2)])
    return name


async def test_partitions_and_ends_match_what_was_produced(stack, topic, unique) -> None:
    async with LogReader(stack) as reader:
        tps = await reader.partitions((topic, unique("missing")))
        assert tps == [TopicPartition(topic, p) for p in range(stack.topic_partitions)]
        ends = await reader.ends(tps)
        assert [ends[tp] for tp in tps] == [5, 2, 0]  # high watermark checked, not only listed
        assert await reader.beginnings(tps) == {tp: 0 for tp in tps}
    assert await log_end_offsets(stack, []) == {}


async def test_bounded_range_from_stored_positions_never_chases_new_records(stack, topic) -> None:
    async with LogReader(stack, max_poll_records=2) as reader:
        tps = await reader.partitions((topic,))
        ends = await reader.ends(tps)
        reader.assign({tps[0]: 3, tps[1]: 0, tps[2]: 0})
        await produce(stack, topic, [(b"late", 0)])  # after the range was fixed
        batches = [batch async for batch in reader.read_range(ends)]
        got = [(r.partition, r.offset, r.key) for batch in batches for r in batch]
        assert sorted(got) == [(0, 3, b"a3"), (0, 4, b"a4"), (1, 0, b"b0"), (1, 1, b"b1")]
        assert len(batches) >= 2  # max_poll_records bounds each read
        assert await reader.behind(ends) == []
        assert reader.assignment() == tps


async def test_beginning_and_end(stack, topic) -> None:
    async with LogReader(stack) as reader:
        tps = await reader.partitions((topic,))
        ends = await reader.ends(tps)
        await reader.assign_at_beginning(tps)
        everything = [r async for batch in reader.read_range(ends) for r in batch]
        assert len(everything) == 7 and all(isinstance(r, Received) for r in everything)
        assert await reader.assign_at_end(tps) == ends
        [(partition, offset)] = await produce(stack, topic, [(b"next", 1)])
        [new] = await read_new(reader, 1)
        assert (new.partition, new.offset, new.key, new.value) == (
            partition,
            offset,
            b"next",
            b"v-next",
        )


async def test_key_partition_is_where_the_producer_put_the_key(stack, topic) -> None:
    keys = [f"job-{i}".encode() for i in range(12)]
    placed = await produce(stack, topic, [(k, None) for k in keys])  # the default partitioner
    async with LogReader(stack) as reader:
        for key, (partition, _) in zip(keys, placed, strict=True):
            assert await reader.key_partitions((topic,), key) == [TopicPartition(topic, partition)]


# Time lookups (early allowed, never late) are tests/contract's, on both brokers, on
# producer-named timestamps rather than sleeps.
