"""The projector's Kafka side: follow the topics it folds and feed each batch to the fold.

No consumer group: every replica keeps its own database, and the database holds the offsets
(in the same transaction as the rows), so a ``LogReader`` assigns every partition of the
concerns' topics and seeks each to the database's next offset. Used by
``consumers/registry_projector.py``, by the API (in-process option) and by the CLI (to bring a
local read model up to date before a query).
"""

from __future__ import annotations

import asyncio
import sqlite3
import time
from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import structlog
from aiokafka import TopicPartition
from aiokafka.errors import KafkaError

from sparktrainer.bus.kafka import ensure_topics
from sparktrainer.bus.reader import LogReader
from sparktrainer.contracts.records import Received, SkipCounter, TimeAheadError, decode_received
from sparktrainer.registry import db, store
from sparktrainer.registry.concern import RawDecoder
from sparktrainer.registry.concerns import CONCERNS, PROJECTED_TOPICS
from sparktrainer.registry.fold import FOLDS, Folded, Folds, apply_many
from sparktrainer.settings import Settings
from sparktrainer.telemetry.prometheus import TopicCounts

log = structlog.get_logger(__name__)

REASSIGN_EVERY_S = 30.0


@dataclass
class ProjectorStats:
    """Counters tests and operators read."""

    records: int = 0
    applied: int = 0
    skipped: int = 0  # at or below the stored offset: applied before
    unreadable: int = 0  # not one of our events on its own topic: only its offset moves on
    refused: int = 0  # readable, but its fold failed (rolled back alone; the offset moves on)


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
        folds: Folds = FOLDS,
    ) -> None:
        self.settings = settings
        self.db_path = db_path or settings.registry_db_path
        self.topics = tuple(topics)
        self.create_topics = create_topics
        self.batch_max_records = batch_max_records
        self.folds = folds  # every concern's (tests swap one for a smaller bound)
        self.stats = ProjectorStats()
        self.counts: TopicCounts = Counter()  # records by (topic, folded | unreadable)
        self._next: dict[TopicPartition, int] = {}
        self.skips = SkipCounter("registry-projector")
        self.ready = asyncio.Event()
        self._raw: dict[str, RawDecoder] = {k: v for c in CONCERNS for k, v in c.raw_topics.items()}
        self._conn: sqlite3.Connection | None = None
        self._reader: LogReader | None = None
        self._assigned: list[TopicPartition] = []
        self._assigned_at = 0.0

    @property
    def conn(self) -> sqlite3.Connection:
        """The read model's connection (for tests and in-process readers)."""
        return self._require()[1]

    @property
    def assigned(self) -> list[TopicPartition]:
        """The partitions being folded."""
        return list(self._assigned)

    async def start(self, rebuild: bool = False) -> None:
        """Open the database, assign every partition and seek each to its stored offset."""
        if self.create_topics:
            await ensure_topics(self.settings, self.topics)
        self._conn = await asyncio.to_thread(store.connect, self.db_path)
        if rebuild:
            await asyncio.to_thread(db.wipe, self._conn)
            log.info("read_model_wiped", db=str(self.db_path))
        self._reader = LogReader(self.settings, max_poll_records=self.batch_max_records)
        await self._reader.start()
        await self._assign()
        self.ready.set()
        log.info("consumer_ready", db=str(self.db_path), partitions=len(self._assigned))

    async def _assign(self) -> None:
        """Assign every partition of the topics; seek each to the stored offset (or its start)."""
        reader, conn = self._require()
        tps = await reader.partitions(self.topics)
        self._assigned_at = time.monotonic()
        if tps == self._assigned:
            return
        # Offsets are looked up before assigning (see bus/reader.py on tansu).
        offsets = await asyncio.to_thread(db.stored_offsets, conn)
        begins = await reader.beginnings(tps)
        ends = await reader.ends(tps)
        positions = {}
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
            positions[tp] = max(stored, begins[tp])
        reader.assign(positions)
        self._next.update(positions)
        self._assigned = tps

    def _require(self) -> tuple[LogReader, sqlite3.Connection]:
        if self._reader is None or self._conn is None:
            raise RuntimeError("Projector.start() has not been called")
        return self._reader, self._conn

    async def poll(self, timeout_ms: int = 500) -> int:
        """Fold what the next fetch brings; returns how many records were applied."""
        reader, conn = self._require()
        records = await reader.read(timeout_ms, max_records=self.batch_max_records)
        if not records:
            return 0
        # Decoding and SQLite both block: do them off the event loop, in one transaction.
        applied = await asyncio.to_thread(self._fold_batch, conn, records)
        for r in records:
            self._next[TopicPartition(r.topic, r.partition)] = r.offset + 1
            self.counts[(r.topic, "folded")] += 1
        self.stats.records += len(records)
        self.stats.applied += applied
        self.stats.skipped += len(records) - applied
        return applied

    def _fold_batch(self, conn: sqlite3.Connection, records: list[Received]) -> int:
        by_offset = {(r.topic, r.partition, r.offset): r for r in records}

        def refused(rec: Folded, error: Exception) -> None:
            self.stats.refused += 1
            self.skips.skip(by_offset[(rec.topic, rec.partition, rec.offset)], "fold_failed", error)

        return apply_many(conn, [self._folded(r) for r in records], self.folds, on_error=refused)

    def _folded(self, r: Received) -> Folded:
        """The record's event: read by its topic's concern, or one of ours on its own topic."""
        event: Any
        raw = self._raw.get(r.topic)
        try:
            # Not CloudEvents (the public door): the concern reads it; else our event, only
            # on its own topic (a registration on jobs.lifecycle registers nothing).
            event = (
                raw(r, self.settings.limits)
                if raw is not None
                else decode_received(r, time_ahead_max_s=self.settings.event_time_ahead_max_s)
            )
        except Exception as e:  # whatever a record holds, the partition goes on
            self.stats.unreadable += 1
            self.counts[(r.topic, "unreadable")] += 1
            self.skips.skip(r, "time_ahead" if isinstance(e, TimeAheadError) else "unreadable", e)
            event = None
        return Folded(r.topic, r.partition, r.offset, event)

    def lag(self) -> dict[tuple[str, int], int]:
        """Records not folded yet per partition: log end at the last fetch - next to fold."""
        if self._reader is None:
            return {}
        out = {}
        for tp, position in list(self._next.items()):
            end = self._reader.highwater(tp)
            if end is not None:
                out[(tp.topic, tp.partition)] = max(0, end - position)
        return out

    async def catch_up(self, timeout_s: float | None = None) -> int:
        """Fold everything up to the log's end as of now; returns how many records were applied."""
        reader, _ = self._require()
        ends = await reader.ends(self._assigned)
        deadline = None if timeout_s is None else time.monotonic() + timeout_s
        applied = 0
        while await reader.behind(ends):
            if deadline is not None and time.monotonic() > deadline:
                raise TimeoutError(f"projector did not catch up within {timeout_s} s")
            applied += await self.poll(timeout_ms=200)
        return applied

    async def run(self, stop: asyncio.Event | None = None) -> None:
        """Fold records as they arrive until ``stop`` is set (or the task is cancelled)."""
        stop = stop or asyncio.Event()
        if self._reader is None:
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
        """Stop reading and close the database."""
        if self._reader is not None:
            await self._reader.stop()
            self._reader = None
        if self._conn is not None:
            self._conn.close()
            self._conn = None
        self._assigned = []

    async def __aenter__(self) -> Projector:
        await self.start()
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.close()
