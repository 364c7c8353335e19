"""Reading the log by hand (no consumer group): partitions, key routing, bounded ranges.

The projector, the replay tool and ``sparktrainer jobs watch`` read topics with manually
assigned partitions and their own notion of where to start, so they share these helpers.
"""

from __future__ import annotations

import time

from aiokafka import AIOKafkaConsumer, TopicPartition
from aiokafka.partitioner import murmur2

from sparktrainer.bus.kafka import make_consumer
from sparktrainer.settings import Settings

# Short fetch long-polls: a broker may answer one request per connection at a time (tansu
# does), so offset lookups made while a fetch is pending wait for it; 100 ms keeps a CLI
# catch-up snappy at the cost of ten empty fetches a second when idle.
FETCH_MAX_WAIT_MS = 100


async def partitions_of(
    consumer: AIOKafkaConsumer, topics: tuple[str, ...]
) -> list[TopicPartition]:
    """Every partition of the topics that exist now (fresh metadata; missing topics skipped)."""
    # A consumer without a subscription caches no metadata for these topics, so ask the
    # broker directly rather than through ``partitions_for_topic``.
    cluster = await consumer._client.fetch_all_metadata()
    out: list[TopicPartition] = []
    for topic in topics:
        for partition in sorted(cluster.partitions_for_topic(topic) or ()):
            out.append(TopicPartition(topic, partition))
    return out


def partition_for_key(key: bytes, partitions: list[int]) -> int:
    """The partition the default (murmur2) partitioner of Kafka clients picks for a key."""
    ordered = sorted(partitions)
    return ordered[(murmur2(key) & 0x7FFFFFFF) % len(ordered)]


async def positions_below(
    consumer: AIOKafkaConsumer, ends: dict[TopicPartition, int]
) -> list[TopicPartition]:
    """The partitions whose position has not reached its end offset yet."""
    behind = []
    for tp, end in ends.items():
        if await consumer.position(tp) < end:
            behind.append(tp)
    return behind


async def log_end_offsets(
    settings: Settings, tps: list[TopicPartition], timeout_s: float = 10.0
) -> dict[TopicPartition, int]:
    """The end offset of each partition: ListOffsets, checked against the fetch high watermark.

    tansu 0.6 on its S3 storage engine answers ListOffsets(latest) with a stale offset (seen:
    1 for a partition holding 12 records) while its fetch responses carry the right high
    watermark; so a probe consumer fetches from the listed end and the larger value wins.
    """
    if not tps:
        return {}
    probe = make_consumer(
        settings,
        group_id=None,
        fetch_max_wait_ms=FETCH_MAX_WAIT_MS,
        max_partition_fetch_bytes=1024,
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
