"""Test helpers on a real broker: produce records and tap topics from a known point."""

from __future__ import annotations

import asyncio
import json
from collections.abc import Callable
from typing import Any

from aiokafka import AIOKafkaProducer

from sparktrainer.bus.kafka import make_consumer, make_producer
from sparktrainer.bus.reader import LogReader
from sparktrainer.contracts.envelope import decode
from sparktrainer.settings import Settings


class Tap:
    """Reads topics from their current end (fixed when the tap starts): no group, no race."""

    def __init__(self, settings: Settings, *topics: str) -> None:
        self.settings = settings
        self.topics = topics
        self.events: list[Any] = []
        self.records: list[Any] = []
        self._reader = LogReader(settings)
        self._task: asyncio.Task[None] | None = None

    async def __aenter__(self) -> Tap:
        await self._reader.start()
        await self._reader.assign_at_end(await self._reader.partitions(self.topics))
        self._task = asyncio.create_task(self._run())
        return self

    async def _run(self) -> None:
        while True:
            for r in await self._reader.read(timeout_ms=100):
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
        await self._reader.stop()


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
    async with LogReader(settings) as reader:
        ends = await reader.ends(await reader.partitions(topics))
    committer = make_consumer(settings, group_id=group_id)
    await committer.start()
    try:
        committer.assign(list(ends))
        await committer.commit(ends)
    finally:
        await committer.stop()
