"""The projector's Kafka side: follow the topics it folds and feed each batch to the fold.

No consumer group: every replica keeps its own database, and the database holds the offsets
(in the same transaction as the rows), so partitions are assigned by hand and each one is
sought to the database's next offset. Used by ``consumers/registry_projector.py``, by the API
(in-process option) and by the CLI (to bring a local read model up to date before a query).
"""

from __future__ import annotations

import asyncio
import sqlite3
import time
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import structlog
from aiokafka import AIOKafkaConsumer, ConsumerRecord, TopicPartition
from aiokafka.errors import KafkaError

from sparktrainer.bus.kafka import ensure_topics, make_consumer
from sparktrainer.contracts import topics as t
from sparktrainer.contracts.envelope import EnvelopeError, decode
from sparktrainer.logread import (
    FETCH_MAX_WAIT_MS,
    log_end_offsets,
    partitions_of,
    positions_below,
)
from sparktrainer.registry import store
from sparktrainer.registry.projector import Folded, apply_many, submission_of
from sparktrainer.settings import Settings

log = structlog.get_logger(__name__)

PROJECTED_TOPICS: tuple[str, ...] = (
    t.MODELS_REGISTERED,
    t.JOBS_SUBMITTED,
    t.JOBS_VALIDATED,
    t.JOBS_REJECTED,
    t.JOBS_LIFECYCLE,
)
REASSIGN_EVERY_S = 30.0


@dataclass
class ProjectorStats:
    """Counters tests and operators read."""

    records: int = 0
    applied: int = 0
    skipped: int = 0  # at or below the stored offset: applied before
    unreadable: int = 0


class Projector:
    """Keeps one read-model database up to date with the log."""

    def __init__(
        self,
        settings: Settings,
        db_path: Path | str | None = None,
        *,
        topics: Sequence[str] = PROJECTED_TOPICS,
        create_topics: bool = True,
        batch_max_records: int = 1000,
    ) -> None:
        self.settings = settings
        self.db_path = db_path or settings.registry_db_path
        self.topics = tuple(topics)
        self.create_topics = create_topics
        self.batch_max_records = batch_max_records
        self.stats = ProjectorStats()
        self.ready = asyncio.Event()
        self._conn: sqlite3.Connection | None = None
        self._consumer: AIOKafkaConsumer | None = None
        self._assigned: list[TopicPartition] = []
        self._assigned_at = 0.0

    async def start(self, rebuild: bool = False) -> None:
        """Open the database, assign every partition and seek each to its stored offset."""
        if self.create_topics:
            await ensure_topics(self.settings, self.topics)
        self._conn = await asyncio.to_thread(store.connect, self.db_path)
        if rebuild:
            await asyncio.to_thread(store.wipe, self._conn)
            log.info("read_model_wiped", db=str(self.db_path))
        self._consumer = make_consumer(
            self.settings,
            group_id=None,
            max_poll_records=self.batch_max_records,
            fetch_max_wait_ms=FETCH_MAX_WAIT_MS,
        )
        await self._consumer.start()
        await self._assign()
        self.ready.set()
        log.info("consumer_ready", db=str(self.db_path), partitions=len(self._assigned))

    async def _assign(self) -> None:
        """Assign every partition of the topics; seek each to the stored offset (or its start)."""
        consumer, conn = self._require()
        tps = await partitions_of(consumer, self.topics)
        self._assigned_at = time.monotonic()
        if tps == self._assigned:
            return
        # Ask for the offsets before assigning: once fetches are in flight, other requests
        # wait behind their long polls (tansu answers one request per connection at a time).
        offsets = await asyncio.to_thread(store.stored_offsets, conn)
        begins = await consumer.beginning_offsets(tps) if tps else {}
        ends = await log_end_offsets(self.settings, tps)
        consumer.assign(tps)
        for tp in tps:
            stored = offsets.get((tp.topic, tp.partition), 0)
            if stored > ends[tp]:
                log.warning(
                    "read_model_ahead_of_log",
                    topic=tp.topic,
                    partition=tp.partition,
                    stored=stored,
                    end=ends[tp],
                    fix="run the projector with --rebuild",
                )
            consumer.seek(tp, max(stored, begins[tp]))
        self._assigned = tps

    def _require(self) -> tuple[AIOKafkaConsumer, sqlite3.Connection]:
        if self._consumer is None or self._conn is None:
            raise RuntimeError("Projector.start() has not been called")
        return self._consumer, self._conn

    async def poll(self, timeout_ms: int = 500) -> int:
        """Fold what the next fetch brings; returns how many records were applied."""
        consumer, conn = self._require()
        batches = await consumer.getmany(timeout_ms=timeout_ms, max_records=self.batch_max_records)
        records = [r for tp in sorted(batches) for r in batches[tp]]
        if not records:
            return 0
        # Decoding and SQLite both block: do them off the event loop, in one transaction.
        applied = await asyncio.to_thread(self._fold_batch, conn, records)
        self.stats.records += len(records)
        self.stats.applied += applied
        self.stats.skipped += len(records) - applied
        return applied

    def _fold_batch(self, conn: sqlite3.Connection, records: list[ConsumerRecord]) -> int:
        return apply_many(conn, [self._folded(r) for r in records])

    def _folded(self, r: ConsumerRecord) -> Folded:
        event: Any
        if r.topic == t.JOBS_SUBMITTED:
            event = submission_of(
                r.topic,
                r.partition,
                r.offset,
                r.key,
                r.value,
                r.headers,
                r.timestamp,
                self.settings.limits.submission_bytes,
            )
            return Folded(r.topic, r.partition, r.offset, event)
        try:
            event = decode(r.value, r.headers)
        except EnvelopeError as e:
            self.stats.unreadable += 1
            log.warning(
                "record_unreadable",
                topic=r.topic,
                partition=r.partition,
                offset=r.offset,
                error=str(e)[:200],
            )
            event = None
        return Folded(r.topic, r.partition, r.offset, event)

    async def catch_up(self, timeout_s: float | None = None) -> int:
        """Fold everything up to the log's end as of now; returns how many records were applied."""
        consumer, _ = self._require()
        ends = await log_end_offsets(self.settings, self._assigned)
        deadline = None if timeout_s is None else time.monotonic() + timeout_s
        applied = 0
        while await positions_below(consumer, ends):
            if deadline is not None and time.monotonic() > deadline:
                raise TimeoutError(f"projector did not catch up within {timeout_s} s")
            applied += await self.poll(timeout_ms=200)
        return applied

    async def run(self, stop: asyncio.Event | None = None) -> None:
        """Fold records as they arrive until ``stop`` is set (or the task is cancelled)."""
        stop = stop or asyncio.Event()
        if self._consumer is None:
            await self.start()
        while not stop.is_set():
            await self.poll(timeout_ms=500)
            if time.monotonic() - self._assigned_at > REASSIGN_EVERY_S:
                await self._reassign()

    async def _reassign(self) -> None:
        """Pick up new partitions and new topics; a broker outage only postpones it."""
        try:
            await self._assign()
        except KafkaError as e:  # the fetcher reconnects by itself: only this round is lost
            self._assigned_at = time.monotonic()
            log.warning("projector_reassign_failed", error=f"{type(e).__name__}: {e}"[:300])

    async def close(self) -> None:
        """Stop the consumer and close the database."""
        if self._consumer is not None:
            await self._consumer.stop()
            self._consumer = None
        if self._conn is not None:
            self._conn.close()
            self._conn = None
        self._assigned = []

    async def __aenter__(self) -> Projector:
        await self.start()
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.close()
