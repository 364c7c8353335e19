"""Test helpers on a real broker: produce records and tap topics from a known point."""

from __future__ import annotations

import asyncio
import json
from collections.abc import Callable
from typing import Any

from aiokafka import AIOKafkaProducer, TopicPartition

from sparktrainer.bus.kafka import make_consumer, make_producer
from sparktrainer.contracts.envelope import decode
from sparktrainer.logread import log_end_offsets
from sparktrainer.settings import Settings


class Tap:
    """Reads topics from their current end (fixed when the tap starts): no group, no race."""

    def __init__(self, settings: Settings, *topics: str) -> None:
        self.settings = settings
        self.topics = topics
        self.events: list[Any] = []
        self.records: list[Any] = []
        self._consumer = make_consumer(settings, group_id=None)
        self._task: asyncio.Task[None] | None = None

    async def __aenter__(self) -> Tap:
        await self._consumer.start()
        await self._consumer.topics()  # loads metadata
        tps = [
            TopicPartition(topic, p)
            for topic in self.topics
            for p in self._consumer.partitions_for_topic(topic) or ()
        ]
        self._consumer.assign(tps)
        ends = await log_end_offsets(self.settings, tps)  # tansu's ListOffsets can lag
        for tp, end in ends.items():
            self._consumer.seek(tp, end)
        self._task = asyncio.create_task(self._run())
        return self

    async def _run(self) -> None:
        while True:
            batch = await self._consumer.getmany(timeout_ms=100)
            for records in batch.values():
                for r in records:
                    self.records.append(r)
                    try:
                        self.events.append(decode(r.value, r.headers))
                    except ValueError:
                        self.events.append(None)

    async def wait_for(
        self, predicate: Callable[[Any], bool], count: int = 1, timeout_s: float = 60.0
    ) -> list[Any]:
        """Wait until ``count`` decoded events match; return them (fails on timeout)."""
        deadline = asyncio.get_running_loop().time() + timeout_s
        while True:
            hits = [e for e in self.events if e is not None and predicate(e)]
            if len(hits) >= count:
                return hits
            if asyncio.get_running_loop().time() > deadline:
                raise AssertionError(
                    f"timed out: {len(hits)}/{count} matching events after {timeout_s}s"
                )
            await asyncio.sleep(0.05)

    async def __aexit__(self, *exc: object) -> None:
        if self._task:
            self._task.cancel()
            await asyncio.gather(self._task, return_exceptions=True)
        await self._consumer.stop()


async def produce(
    producer: AIOKafkaProducer,
    topic: str,
    value: bytes | dict[str, Any] | None,
    key: bytes | None = None,
    headers: list[tuple[str, bytes]] | None = None,
) -> tuple[int, int]:
    """Send one raw record; returns (partition, offset)."""
    if isinstance(value, dict):
        value = json.dumps(value).encode()
    meta = await producer.send_and_wait(topic, value, key=key, headers=headers or [])
    return meta.partition, meta.offset


def producer_for(settings: Settings) -> AIOKafkaProducer:
    """A producer like the services use."""
    return make_producer(settings)


async def start_group_at_end(settings: Settings, group_id: str, *topics: str) -> None:
    """Commit ``group_id``'s offsets at the current end of ``topics``.

    A fresh test group then sees exactly what is produced from now on, with the default
    ``earliest`` reset, and a second member taking over a partition starts where the first
    stopped (a ``latest`` reset would skip an uncommitted job instead).
    """
    consumer = make_consumer(settings, group_id=None)
    await consumer.start()
    try:
        await consumer.topics()
        tps = [TopicPartition(t, p) for t in topics for p in consumer.partitions_for_topic(t) or ()]
    finally:
        await consumer.stop()
    ends = await log_end_offsets(settings, tps)  # tansu's ListOffsets can lag
    committer = make_consumer(settings, group_id=group_id)
    await committer.start()
    try:
        committer.assign(tps)
        await committer.commit(ends)
    finally:
        await committer.stop()
