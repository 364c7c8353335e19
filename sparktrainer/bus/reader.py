"""Reading the log without a consumer group: the bus's second consumer shape.

``ConsumerRuntime`` shares partitions with a group and commits what its handler finished. A
``LogReader`` assigns partitions by hand, starts where its caller says (an offset the caller
stored, the beginning, the end, a time), reads bounded ranges or follows, and commits nothing.
The registry projector (its offsets live in its database), replay (a range fixed when it
starts), the CLI's job follower (the one partition of each topic that holds a job's key), the
trainer's cancel listener (every cancel, from the start) and the log-end checks all read
through it.

tansu's quirks are handled here and nowhere else:

- It answers one request per connection at a time, so a pending fetch long-poll holds up
  every other request on that connection (ListOffsets, metadata). Fetches wait at most
  ``FETCH_MAX_WAIT_MS``, and callers look offsets up before they assign (``ends`` uses a
  probe with a connection of its own).
- On its S3 storage engine ``ListOffsets(latest)`` can lag the log (seen: 1 for a partition
  holding 12 records) while fetch responses carry the right high watermark, so
  :func:`log_end_offsets` fetches from the listed end and the larger value wins.
"""

from __future__ import annotations

import time
from collections.abc import AsyncIterator, Iterable, Mapping
from typing import Any

from aiokafka import AIOKafkaConsumer, TopicPartition
from aiokafka.partitioner import murmur2

from sparktrainer.bus.kafka import make_consumer, received_from
from sparktrainer.bus.waiting import tp_of
from sparktrainer.contracts.records import Received
from sparktrainer.settings import Settings

# 100 ms keeps a CLI catch-up snappy at the cost of ten empty fetches a second when idle.
FETCH_MAX_WAIT_MS = 100


def partition_for_key(key: bytes, partitions: Iterable[int]) -> int:
    """The partition the default (murmur2) partitioner of Kafka clients picks for a key."""
    ordered = sorted(partitions)
    return ordered[(murmur2(key) & 0x7FFFFFFF) % len(ordered)]


async def log_end_offsets(
    settings: Settings, tps: list[TopicPartition], timeout_s: float = 10.0
) -> dict[TopicPartition, int]:
    """The end offset of each partition: ListOffsets, checked against the fetch high watermark."""
    if not tps:
        return {}
    probe = make_consumer(
        settings, group_id=None, fetch_max_wait_ms=FETCH_MAX_WAIT_MS, max_partition_fetch_bytes=1024
    )
    await probe.start()
    try:
        listed = await probe.end_offsets(tps)
        probe.assign(tps)
        for tp in tps:
            probe.seek(tp, listed[tp])
        deadline = time.monotonic() + timeout_s
        while any(probe.highwater(tp) is None for tp in tps) and time.monotonic() < deadline:
            await probe.getmany(timeout_ms=FETCH_MAX_WAIT_MS)
        return {tp: max(listed[tp], probe.highwater(tp) or 0) for tp in tps}
    finally:
        await probe.stop()


class LogReader:
    """A group-less reader: partitions assigned by hand, positions chosen by the caller.

    :param settings: where the brokers are, and how to reach them.
    :param max_poll_records: the most records one :meth:`read` returns.
    :param fetch_max_wait_ms: how long the broker may hold a fetch that finds no data (short:
        see the module's note on tansu).
    :param options: further aiokafka consumer options.
    """

    def __init__(
        self,
        settings: Settings,
        *,
        max_poll_records: int = 500,
        fetch_max_wait_ms: int = FETCH_MAX_WAIT_MS,
        **options: Any,
    ) -> None:
        self.settings = settings
        self._consumer: AIOKafkaConsumer = make_consumer(
            settings,
            group_id=None,
            max_poll_records=max_poll_records,
            fetch_max_wait_ms=fetch_max_wait_ms,
            **options,
        )

    def __repr__(self) -> str:
        parts = sorted(f"{tp.topic}/{tp.partition}" for tp in self.assignment())
        return f"LogReader(assigned={parts})"

    async def start(self) -> None:
        """Connect (no group is joined)."""
        await self._consumer.start()

    async def stop(self) -> None:
        """Disconnect."""
        await self._consumer.stop()

    async def __aenter__(self) -> LogReader:
        await self.start()
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.stop()

    # -- where things are ------------------------------------------------------------------

    async def partitions(self, topics: Iterable[str]) -> list[TopicPartition]:
        """Every partition of the topics that exist now (fresh metadata; missing topics skipped)."""
        # Without a subscription the consumer caches no metadata for these topics: ask the
        # broker directly rather than through ``partitions_for_topic``.
        cluster = await self._consumer._client.fetch_all_metadata()
        return [
            TopicPartition(topic, partition)
            for topic in topics
            for partition in sorted(cluster.partitions_for_topic(topic) or ())
        ]

    async def key_partitions(self, topics: Iterable[str], key: bytes) -> list[TopicPartition]:
        """For each topic that exists, the partition a record with this key is produced to."""
        by_topic: dict[str, list[int]] = {}
        for tp in await self.partitions(topics):
            by_topic.setdefault(tp.topic, []).append(tp.partition)
        return [TopicPartition(t, partition_for_key(key, ps)) for t, ps in by_topic.items()]

    async def beginnings(self, tps: list[TopicPartition]) -> dict[TopicPartition, int]:
        """The first offset each partition still holds."""
        return await self._consumer.beginning_offsets(tps) if tps else {}

    async def ends(self, tps: list[TopicPartition]) -> dict[TopicPartition, int]:
        """The log-end offset of each partition (see :func:`log_end_offsets`)."""
        return await log_end_offsets(self.settings, tps)

    async def offsets_at(self, tps: list[TopicPartition], ms: int) -> dict[TopicPartition, int]:
        """The first offset at or after ``ms`` per partition; partitions with none are left out.

        tansu answers batch-coarse (the offset may be early): filter on record timestamps too.
        """
        found = await self._consumer.offsets_for_times({tp: ms for tp in tps}) if tps else {}
        return {tp: at.offset for tp, at in found.items() if at is not None}

    # -- positions -------------------------------------------------------------------------

    def assign(self, positions: Mapping[TopicPartition, int]) -> None:
        """Read exactly these partitions, each from its offset (replaces any assignment)."""
        self._consumer.assign(list(positions))
        for tp, offset in positions.items():
            self._consumer.seek(tp, offset)

    async def assign_at_beginning(self, tps: list[TopicPartition]) -> None:
        """Read these partitions from the first offset each still holds."""
        self._consumer.assign(tps)
        if tps:
            await self._consumer.seek_to_beginning(*tps)

    async def assign_at_end(self, tps: list[TopicPartition]) -> dict[TopicPartition, int]:
        """Read these partitions from their end as of now (only what comes next); the ends."""
        ends = await self.ends(tps)
        self.assign(ends)
        return ends

    def highwater(self, tp: TopicPartition) -> int | None:
        """The partition's log end as of the last fetch (None before one); no broker call."""
        return self._consumer.highwater(tp)

    def assignment(self) -> list[TopicPartition]:
        """The partitions being read."""
        return sorted(self._consumer.assignment())

    async def behind(self, ends: Mapping[TopicPartition, int]) -> list[TopicPartition]:
        """The partitions whose position has not reached its end offset yet."""
        return [tp for tp, end in ends.items() if await self._consumer.position(tp) < end]

    # -- reading ---------------------------------------------------------------------------

    async def read(
        self,
        timeout_ms: int = 500,
        max_records: int | None = None,
        partitions: Iterable[TopicPartition] = (),
    ) -> list[Received]:
        """What the next fetch brings (of ``partitions``, or all), by partition then offset."""
        batches = await self._consumer.getmany(
            *partitions, timeout_ms=timeout_ms, max_records=max_records
        )
        return [received_from(r) for tp in sorted(batches) for r in batches[tp]]

    async def read_range(
        self, ends: Mapping[TopicPartition, int], timeout_ms: int = 500
    ) -> AsyncIterator[list[Received]]:
        """Batches of the records below each partition's end, until every position reaches it.

        Only partitions still behind are fetched; records at or past an end are dropped (the
        range is fixed: reading a topic one also writes to never chases its own output).
        """
        while behind := await self.behind(ends):
            records = await self.read(timeout_ms, partitions=behind)
            yield [r for r in records if r.offset < ends[tp_of(r)]]
