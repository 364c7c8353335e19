"""Replay: copy a slice of a topic (by offsets or by time, filtered) to a topic, marked as replayed.

Every replayed record keeps its key, value and headers and gains the header
``sparktrainer_replayed_from: topic/partition/offset``. The end of each partition is fixed when
the replay starts, so replaying a topic onto itself never chases its own output. Consumers
are idempotent (the registry upserts, event ids are deterministic), so a replay re-drives
work without double-counting what was already done.

    python -m sparktrainer.replay --help        (same as ``sparktrainer replay``)

Recipes:

    # re-drive the jobs the validator rejected in the last day, after fixing the validator
    sparktrainer replay sparktrainer.jobs.submitted --only-rejected --since 1d
    # rebuild the registry read model from the log
    sparktrainer serve projector --rebuild --once
    # copy an hour of lifecycle events to a scratch topic, looking first
    sparktrainer replay sparktrainer.jobs.lifecycle --since 2025-06-01T10:00Z \\
        --until 2025-06-01T11:00Z --to scratch.lifecycle --dry-run
"""

from __future__ import annotations

import asyncio
import json
import re
import time
from collections.abc import AsyncIterator, Callable, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any

from aiokafka import AIOKafkaConsumer, AIOKafkaProducer, ConsumerRecord, TopicPartition

from sparktrainer.bus.kafka import ensure_topics, make_consumer, make_producer
from sparktrainer.contracts import topics as t
from sparktrainer.contracts.envelope import REPLAY_HEADER, EnvelopeError, decode, header_map
from sparktrainer.contracts.events import JobRejected, derived_job_id
from sparktrainer.logread import (
    FETCH_MAX_WAIT_MS,
    log_end_offsets,
    partitions_of,
    positions_below,
)
from sparktrainer.settings import Settings

Bound = int | dict[int, int] | None
_RELATIVE = re.compile(r"^(\d+(?:\.\d+)?)\s*(ms|s|m|h|d|w)$")
_UNIT_S = {"ms": 0.001, "s": 1, "m": 60, "h": 3600, "d": 86400, "w": 604800}
SEND_WINDOW = 500  # records in flight before waiting for acknowledgements


class ReplayError(ValueError):
    """A replay that cannot run as asked; the message says what to change."""


@dataclass(frozen=True)
class ReplaySpec:
    """What to replay: a source topic, a range (offsets and/or time), filters, a destination."""

    source: str
    to: str | None = None
    partitions: tuple[int, ...] | None = None
    from_offset: Bound = None  # first offset replayed (inclusive), for all or per partition
    to_offset: Bound = None  # last offset replayed (inclusive)
    since_ms: int | None = None
    until_ms: int | None = None  # inclusive
    types: tuple[str, ...] = ()
    job_ids: tuple[str, ...] = ()
    keys: tuple[str, ...] = ()
    only: frozenset[tuple[int, int]] | None = None  # exact (partition, offset) picks
    rate_per_s: float | None = None
    dry_run: bool = False
    limit: int | None = None

    @property
    def destination(self) -> str:
        """Where records go: ``to``, or back onto the source topic."""
        return self.to or self.source


@dataclass(frozen=True)
class Picked:
    """A record selected for replay, with the headers it will carry."""

    topic: str
    partition: int
    offset: int
    timestamp_ms: int
    key: bytes | None
    value: bytes | None
    headers: list[tuple[str, bytes]]
    ce_type: str | None

    @property
    def origin(self) -> str:
        """``topic/partition/offset``: the value of the replay header."""
        return f"{self.topic}/{self.partition}/{self.offset}"

    def as_dict(self, destination: str) -> dict[str, Any]:
        """What a dry run prints for this record."""
        return {
            "from": self.origin,
            "to": destination,
            "key": self.key.decode("utf-8", "replace") if self.key is not None else None,
            "type": self.ce_type,
            "timestamp": datetime.fromtimestamp(self.timestamp_ms / 1000, UTC).isoformat(),
            "bytes": len(self.value or b""),
        }


@dataclass
class ReplayStats:
    """What a replay did."""

    scanned: int = 0
    matched: int = 0
    sent: int = 0
    ranges: dict[str, list[int]] = field(default_factory=dict)  # "topic/p": [start, stop)


# --- parsing -------------------------------------------------------------------------------


def parse_time(text: str, now: datetime | None = None) -> int:
    """Milliseconds since the epoch from ISO 8601 (UTC when naive), ``now``, or ``1h``-style ago."""
    now = now or datetime.now(UTC)
    text = text.strip()
    match = _RELATIVE.match(text)
    if match:
        ago = timedelta(seconds=float(match[1]) * _UNIT_S[match[2]])
        return int((now - ago).timestamp() * 1000)
    if text == "now":
        return int(now.timestamp() * 1000)
    try:
        at = datetime.fromisoformat(text)
    except ValueError as e:
        raise ReplayError(
            f"'{text}' is not a time: use ISO 8601 (2025-06-01T10:00Z) "
            "or an age like 90s, 15m, 1h, 2d"
        ) from e
    if at.tzinfo is None:
        at = at.replace(tzinfo=UTC)
    return int(at.timestamp() * 1000)


def parse_bound(text: str) -> int | dict[int, int]:
    """``N`` for every partition, or ``P:N,P:N`` per partition."""
    try:
        if ":" not in text:
            return _non_negative(int(text))
        out: dict[int, int] = {}
        for part in text.split(","):
            p, _, n = part.partition(":")
            out[_non_negative(int(p))] = _non_negative(int(n))
        return out
    except ValueError as e:
        raise ReplayError(f"'{text}' is not an offset: use N, or P:N,P:N per partition") from e


def _non_negative(n: int) -> int:
    if n < 0:
        raise ValueError("negative")
    return n


def _bound_for(bound: Bound, partition: int) -> int | None:
    return bound.get(partition) if isinstance(bound, dict) else bound


# --- selecting -----------------------------------------------------------------------------


def ce_type_of(record: ConsumerRecord) -> str | None:
    """The CloudEvents type: the ``ce_type`` header, or ``type`` of a structured-mode value."""
    found = header_map(record.headers).get("ce_type")
    if found is not None:
        return found
    try:
        body = json.loads(record.value) if record.value else None
    except (UnicodeDecodeError, ValueError, RecursionError):
        return None
    return str(body["type"]) if isinstance(body, dict) and "specversion" in body else None


def _job_ids_of(record: ConsumerRecord) -> set[str]:
    ids = set()
    if record.key:
        ids.add(record.key.decode("utf-8", "replace"))
    subject = header_map(record.headers).get("ce_subject")
    if subject:
        ids.add(subject)
    try:
        body = json.loads(record.value) if record.value else None
    except (UnicodeDecodeError, ValueError, RecursionError):
        body = None
    if isinstance(body, dict):
        data: dict[str, Any] = body["data"] if isinstance(body.get("data"), dict) else body
        if isinstance(data.get("job_id"), str):
            ids.add(data["job_id"])
    if record.topic == t.JOBS_SUBMITTED and not record.key:
        ids.add(derived_job_id(record.topic, record.partition, record.offset))
    return ids


def matches(spec: ReplaySpec, record: ConsumerRecord) -> bool:
    """Whether a record in range passes the time window and every filter."""
    if spec.since_ms is not None and record.timestamp < spec.since_ms:
        return False  # offsets_for_times may start early (tansu: batch-coarse)
    if spec.until_ms is not None and record.timestamp > spec.until_ms:
        return False
    if spec.only is not None and (record.partition, record.offset) not in spec.only:
        return False
    if spec.keys and (record.key or b"").decode("utf-8", "replace") not in spec.keys:
        return False
    if spec.types and ce_type_of(record) not in spec.types:
        return False
    return not spec.job_ids or bool(_job_ids_of(record) & set(spec.job_ids))


def pick(record: ConsumerRecord) -> Picked:
    """The record as it will be sent: same key, value and headers, plus the replay header."""
    headers = [(k, bytes(v)) for k, v in (record.headers or ()) if k != REPLAY_HEADER]
    origin = f"{record.topic}/{record.partition}/{record.offset}"
    headers.append((REPLAY_HEADER, origin.encode()))
    return Picked(
        record.topic,
        record.partition,
        record.offset,
        record.timestamp,
        record.key,
        record.value,
        headers,
        ce_type_of(record),
    )


# --- reading and sending -------------------------------------------------------------------


async def plan(
    settings: Settings, consumer: AIOKafkaConsumer, spec: ReplaySpec
) -> dict[TopicPartition, tuple[int, int]]:
    """The offset range ``[start, stop)`` to scan per partition; the stop is fixed now."""
    tps = await partitions_of(consumer, (spec.source,))
    if not tps:
        raise ReplayError(f"topic '{spec.source}' does not exist (or has no partitions)")
    if spec.partitions is not None:
        tps = [tp for tp in tps if tp.partition in spec.partitions]
    begins = await consumer.beginning_offsets(tps)
    ends = await log_end_offsets(settings, tps)
    by_time: dict[TopicPartition, Any] = {}
    if spec.since_ms is not None:
        by_time = await consumer.offsets_for_times({tp: spec.since_ms for tp in tps})
    ranges = {}
    for tp in tps:
        start, stop = begins[tp], ends[tp]
        first, last = (
            _bound_for(spec.from_offset, tp.partition),
            _bound_for(spec.to_offset, tp.partition),
        )
        if first is not None:
            start = max(start, first)
        if last is not None:
            stop = min(stop, last + 1)
        if spec.since_ms is not None:
            found = by_time.get(tp)
            start = stop if found is None else max(start, found.offset)
        ranges[tp] = (start, max(start, stop))
    return ranges


class Reader:
    """Reads the planned ranges of a replay with a group-less consumer."""

    def __init__(self, settings: Settings, spec: ReplaySpec) -> None:
        self.settings = settings
        self.spec = spec
        self.consumer = make_consumer(
            settings, group_id=None, max_poll_records=2000, fetch_max_wait_ms=FETCH_MAX_WAIT_MS
        )
        self.ranges: dict[TopicPartition, tuple[int, int]] = {}
        self.total = 0

    async def __aenter__(self) -> Reader:
        await self.consumer.start()
        try:
            self.ranges = await plan(self.settings, self.consumer, self.spec)
        except BaseException:
            await self.consumer.stop()
            raise
        self.total = sum(stop - start for start, stop in self.ranges.values())
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.consumer.stop()

    async def records(
        self, on_progress: Callable[[int, int], None] | None = None
    ) -> AsyncIterator[ConsumerRecord]:
        """Every record of the ranges, partition by partition in offset order."""
        ends = {tp: stop for tp, (start, stop) in self.ranges.items() if start < stop}
        if not ends:
            return
        self.consumer.assign(list(ends))
        for tp in ends:
            self.consumer.seek(tp, self.ranges[tp][0])
        done = 0
        while behind := await positions_below(self.consumer, ends):
            batches = await self.consumer.getmany(*behind, timeout_ms=500)
            for tp, records in batches.items():
                for record in records:
                    if record.offset < ends[tp]:
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
                event = decode(record.value, record.headers, JobRejected)
            except EnvelopeError:
                continue
            if event.source is not None and event.source.topic == source:
                picked[event.job_id] = (event.source.partition, event.source.offset)
    if picked:
        async with Reader(settings, ReplaySpec(source=t.JOBS_VALIDATED)) as reader:
            async for record in reader.records():
                if record.key:
                    picked.pop(record.key.decode("utf-8", "replace"), None)
    return frozenset(picked.values())


def main(argv: Sequence[str] | None = None) -> int:
    """``python -m sparktrainer.replay``: the same command as ``sparktrainer replay``."""
    import argparse

    from sparktrainer.cli import replay as cli

    parser = argparse.ArgumentParser(prog="python -m sparktrainer.replay", description=__doc__)
    parser.formatter_class = argparse.RawDescriptionHelpFormatter
    cli.add_arguments(parser)
    args = parser.parse_args(argv)
    return int(args.func(args))


if __name__ == "__main__":
    raise SystemExit(main())
