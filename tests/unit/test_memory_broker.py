"""What only the in-memory broker does (tansu lacks it, so tests/contract cannot run it on both).

DeleteRecords (tansu closes the connection on it): the load tests free the log between rounds
so a process's memory shows the service's, not the log's. A member that stops polling is
evicted and the rest rebalance. Auto-commit is refused rather than silently ignored.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable

import pytest
from aiokafka import TopicPartition
from aiokafka.admin import RecordsToDelete
from aiokafka.errors import OffsetOutOfRangeError

from sparktrainer.bus.kafka import make_admin, make_consumer
from sparktrainer.bus.reader import LogReader
from sparktrainer.settings import Settings
from tests.conftest import KafkaHelper

pytestmark = pytest.mark.memory


async def test_deleted_records_move_the_log_start(
    memory_kafka: KafkaHelper, memory_settings: Settings
) -> None:
    topic = await memory_kafka.create_topic()
    for i in range(5):
        await memory_kafka.produce(topic, f"d{i}")
    tp = TopicPartition(topic, 0)
    admin = make_admin(memory_settings)
    assert await admin.delete_records({tp: RecordsToDelete(3)}) == {tp: 3}
    with pytest.raises(OffsetOutOfRangeError):
        await admin.delete_records({tp: RecordsToDelete(6)})  # past the end
    async with LogReader(memory_settings) as reader:
        assert await reader.beginnings([tp]) == {tp: 3}
        assert await reader.ends([tp]) == {tp: 5}
        reader.assign({tp: 1})  # below the log start: reset to it (earliest)
        seen = [r async for batch in reader.read_range({tp: 5}) for r in batch]
        assert [(r.offset, r.value) for r in seen] == [(3, b"d3"), (4, b"d4")]


async def test_a_member_that_stops_polling_is_evicted(
    memory_kafka: KafkaHelper, memory_settings: Settings, unique: Callable[[str], str]
) -> None:
    topic = await memory_kafka.create_topic(partitions=2)
    group = unique("group")
    idle = make_consumer(memory_settings, topic, group_id=group, max_poll_interval_ms=200)
    busy = make_consumer(memory_settings, topic, group_id=group)
    await idle.start()
    await busy.start()
    everything = {TopicPartition(topic, p) for p in range(2)}
    try:
        deadline = time.monotonic() + 10
        while busy.assignment() != everything:  # idle never polls: it is dropped
            assert time.monotonic() < deadline, (idle.assignment(), busy.assignment())
            await busy.getmany(timeout_ms=50)
        await memory_kafka.produce(topic, "while out")
        assert await idle.getmany(timeout_ms=0) == {}  # out of the group: fetches nothing
        deadline = time.monotonic() + 10
        while len(busy.assignment()) != 1:  # that poll rejoined it: the partitions split again
            assert time.monotonic() < deadline, (idle.assignment(), busy.assignment())
            await asyncio.gather(idle.getmany(timeout_ms=50), busy.getmany(timeout_ms=50))
        assert idle.assignment() | busy.assignment() == everything
    finally:
        await asyncio.gather(idle.stop(), busy.stop())


def test_auto_commit_is_refused(memory_settings: Settings) -> None:
    with pytest.raises(ValueError, match="manual commits"):
        make_consumer(memory_settings, group_id="g", enable_auto_commit=True)
