"""The replay engine: fix each partition's range, read it, send what matches, marked.

The end of each partition is fixed when the replay starts, so replaying a topic onto itself
never chases its own output.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass, field
from typing import Any

from aiokafka import AIOKafkaProducer, TopicPartition

from sparktrainer.bus.kafka import ensure_topics, make_producer
from sparktrainer.bus.reader import LogReader
from sparktrainer.contracts import topics as t
from sparktrainer.contracts.envelope import EnvelopeError
from sparktrainer.contracts.events import JobRejected
from sparktrainer.contracts.records import Received, decode_received
from sparktrainer.replay.spec import Picked, ReplayError, ReplaySpec, bound_for, matches, pick
from sparktrainer.settings import Settings

SEND_WINDOW = 500  # records in flight before waiting for acknowledgements
Ranges = dict[TopicPartition, tuple[int, int]]


@dataclass
class ReplayStats:
    """What a replay did."""

    scanned: int = 0
    matched: int = 0
    sent: int = 0
    ranges: dict[str, list[int]] = field(default_factory=dict)  # "topic/p": [start, stop)


async def plan(reader: LogReader, spec: ReplaySpec) -> Ranges:
    """The offset range ``[start, stop)`` to scan per partition; the stop is fixed now."""
    tps = await reader.partitions((spec.source,))
    if not tps:
        raise ReplayError(f"topic '{spec.source}' does not exist (or has no partitions)")
    if spec.partitions is not None:
        tps = [tp for tp in tps if tp.partition in spec.partitions]
    begins = await reader.beginnings(tps)
    ends = await reader.ends(tps)
    by_time = await reader.offsets_at(tps, spec.since_ms) if spec.since_ms is not None else {}
    ranges = {}
    for tp in tps:
        start, stop = begins[tp], ends[tp]
        first, last = (
            bound_for(spec.from_offset, tp.partition),
            bound_for(spec.to_offset, tp.partition),
        )
        if first is not None:
            start = max(start, first)
        if last is not None:
            stop = min(stop, last + 1)
        if spec.since_ms is not None:
            start = max(start, by_time[tp]) if tp in by_time else stop
        ranges[tp] = (start, max(start, stop))
    return ranges


class Reader:
    """Reads the planned ranges of a replay."""

    def __init__(self, settings: Settings, spec: ReplaySpec) -> None:
        self.spec = spec
        self.log = LogReader(settings, max_poll_records=2000)
        self.ranges: Ranges = {}
        self.total = 0

    async def __aenter__(self) -> Reader:
        await self.log.start()
        try:
            self.ranges = await plan(self.log, self.spec)
        except BaseException:
            await self.log.stop()
            raise
        self.total = sum(stop - start for start, stop in self.ranges.values())
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.log.stop()

    async def records(
        self, on_progress: Callable[[int, int], None] | None = None
    ) -> AsyncIterator[Received]:
        """Every record of the ranges, partition by partition in offset order."""
        todo = {tp: r for tp, r in self.ranges.items() if r[0] < r[1]}
        if not todo:
            return
        self.log.assign({tp: start for tp, (start, _) in todo.items()})
        done = 0
        async for batch in self.log.read_range({tp: stop for tp, (_, stop) in todo.items()}):
            for record in batch:
                done += 1
                yield record
            if on_progress:
                on_progress(done, self.total)


class _Pacer:
    """At most ``rate_per_s`` records a second (no limit when None)."""

    def __init__(self, rate_per_s: float | None) -> None:
        self.interval_s = 1.0 / rate_per_s if rate_per_s else 0.0
        self.next_at = time.monotonic()

    async def wait(self) -> None:
        if not self.interval_s:
            return
        delay = self.next_at - time.monotonic()
        if delay > 0:
            await asyncio.sleep(delay)
        self.next_at = max(self.next_at, time.monotonic() - self.interval_s) + self.interval_s


async def replay(
    settings: Settings,
    spec: ReplaySpec,
    on_record: Callable[[Picked], None] | None = None,
    on_progress: Callable[[int, int], None] | None = None,
) -> ReplayStats:
    """Run a replay (or, with ``dry_run``, only say what it would send)."""
    if spec.rate_per_s is not None and spec.rate_per_s <= 0:
        raise ReplayError("--rate must be a positive number of records per second")
    stats = ReplayStats()
    producer: AIOKafkaProducer | None = None
    if not spec.dry_run:
        if spec.to:
            await ensure_topics(settings, (spec.to,))
        producer = make_producer(settings)
        await producer.start()
    try:
        async with Reader(settings, spec) as reader:
            stats.ranges = {
                f"{tp.topic}/{tp.partition}": list(r) for tp, r in reader.ranges.items()
            }
            await _copy(reader, spec, stats, producer, on_record, on_progress)
    finally:
        if producer is not None:
            await producer.stop()
    return stats


async def _copy(
    reader: Reader,
    spec: ReplaySpec,
    stats: ReplayStats,
    producer: AIOKafkaProducer | None,
    on_record: Callable[[Picked], None] | None,
    on_progress: Callable[[int, int], None] | None,
) -> None:
    pacer, in_flight = _Pacer(spec.rate_per_s), []
    async for record in reader.records(on_progress):
        stats.scanned += 1
        if not matches(spec, record):
            continue
        if spec.limit is not None and stats.matched >= spec.limit:
            break
        stats.matched += 1
        picked = pick(record)
        if on_record:
            on_record(picked)
        if producer is None:
            continue
        await pacer.wait()
        in_flight.append(
            await producer.send(
                spec.destination, picked.value, key=picked.key, headers=picked.headers
            )
        )
        if len(in_flight) >= SEND_WINDOW:
            stats.sent += await _settle(in_flight)
    stats.sent += await _settle(in_flight)


async def _settle(in_flight: list[asyncio.Future[Any]]) -> int:
    """Wait for every pending send; raise the first failure."""
    done = len(in_flight)
    await asyncio.gather(*in_flight)
    in_flight.clear()
    return done


async def rejected_sources(settings: Settings, source: str) -> frozenset[tuple[int, int]]:
    """Coordinates on ``source`` of submissions that were rejected and never validated since."""
    picked: dict[str, tuple[int, int]] = {}
    async with Reader(settings, ReplaySpec(source=t.JOBS_REJECTED)) as reader:
        async for record in reader.records():
            try:
                event = decode_received(
                    record, JobRejected, time_ahead_max_s=settings.event_time_ahead_max_s
                )
            except EnvelopeError:
                continue
            if event.source is not None and event.source.topic == source:
                picked[event.job_id] = (event.source.partition, event.source.offset)
    for topic in (*t.VALIDATED_TOPICS, t.SWEEPS) if picked else ():
        async with Reader(settings, ReplaySpec(source=topic)) as reader:
            async for record in reader.records():
                if record.key:
                    picked.pop(record.key.decode("utf-8", "replace"), None)
    return frozenset(picked.values())
