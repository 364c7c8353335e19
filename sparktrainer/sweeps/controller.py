"""The sweep controller's Kafka side: fold the log into the book, act on the sweeps it touches.

No consumer group and no state of its own: at start it folds ``sparktrainer.sweeps`` from the
beginning (the sweeps and its own decisions), then lifecycle, rejected, control and
models.registered (only records keyed by an open sweep or one of its trials), then decides for
every open sweep and follows the five topics. One replica at a time (see docs/ARCHITECTURE.md).
"""

from __future__ import annotations

import asyncio
import time
from collections import Counter
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

import structlog
from aiokafka import TopicPartition
from aiokafka.errors import KafkaError
from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily, Metric
from prometheus_client.registry import Collector
from pydantic import BaseModel

from sparktrainer.bus.kafka import make_producer, send
from sparktrainer.bus.reader import LogReader
from sparktrainer.bus.supervise import Faults
from sparktrainer.contracts import topics as t
from sparktrainer.contracts.envelope import EnvelopeError, encode
from sparktrainer.contracts.records import Received, decode_received
from sparktrainer.errors import StorageError
from sparktrainer.settings import Settings
from sparktrainer.storage.layout import METADATA, model_key, model_prefix
from sparktrainer.storage.s3 import ObjectStore
from sparktrainer.sweeps.book import Sweep, SweepBook, Trial
from sparktrainer.sweeps.decide import SOURCE, Register, next_actions, result
from sparktrainer.telemetry.prometheus import (
    ConsumerCollector,
    FaultsCollector,
    IgnoredCancels,
    TopicCounts,
)

log = structlog.get_logger(__name__)
FOLLOWED = (t.JOBS_LIFECYCLE, t.JOBS_REJECTED, t.JOBS_CONTROL, t.MODELS_REGISTERED)
MAX_STEPS = 10_000  # decisions for one sweep in one go: each sends at least one event
RETRY_S = 5.0


@dataclass
class ControllerStats:
    """Counters tests and operators read."""

    records: int = 0
    folded: int = 0
    unreadable: int = 0
    sent: int = 0


class SweepController:
    """Runs every open sweep: plans, submits and stops trials, registers the best one's model."""

    def __init__(self, settings: Settings, store: ObjectStore | None = None) -> None:
        self.settings = settings
        self.store = store or ObjectStore.from_settings(settings)
        self.book = SweepBook()
        self.faults = Faults()  # what folding and driving survived (bus/supervise.py)
        self.stats = ControllerStats()
        self.counts: TopicCounts = Counter()  # records by (topic, folded | skipped | unreadable)
        self._next: dict[TopicPartition, int] = {}  # next offset to read, per partition
        self._reader: LogReader | None = None
        self.producer = make_producer(settings)
        self.ready = asyncio.Event()
        self._stopping = asyncio.Event()
        self._retry: dict[str, float] = {}  # sweep id -> when to drive it again (monotonic)

    def __repr__(self) -> str:
        return f"SweepController({self.book}, {self.stats}, {self.faults})"

    def stop(self) -> None:
        """Stop after the decisions in progress."""
        self._stopping.set()

    async def wait_positioned(self, timeout_s: float) -> None:
        """Return once the log is folded and the open sweeps are driven."""
        await asyncio.wait_for(self.ready.wait(), timeout_s)

    async def run(self) -> int:
        """Fold the log, drive the open sweeps, follow until stopped."""
        await self.producer.start()
        try:
            async with LogReader(self.settings) as reader:
                self._reader = reader
                positions = await self._catch_up(reader)
                for sweep_id in list(self.book.sweeps):
                    await self.drive_safely(sweep_id)
                reader.assign(positions)
                self.ready.set()
                log.info("consumer_ready", consumer="sweep_controller", open=len(self.book.sweeps))
                while not self._stopping.is_set():
                    touched = self._fold(await reader.read(timeout_ms=300))
                    due = [s for s, at in self._retry.items() if at <= time.monotonic()]
                    for sweep_id in dict.fromkeys([*touched, *due]):
                        await self.drive_safely(sweep_id)
        finally:
            await self.producer.stop()
        return 0

    async def _catch_up(self, reader: LogReader) -> dict[TopicPartition, int]:
        """The sweeps topic first (it names the trials), then the trials' topics; their ends."""
        positions: dict[TopicPartition, int] = {}
        for topics in ((t.SWEEPS,), FOLLOWED):
            tps = await reader.partitions(topics)
            ends = await reader.ends(tps)
            await reader.assign_at_beginning(tps)
            async for batch in reader.read_range(ends, timeout_ms=200):
                self._fold(batch)
            positions.update(ends)
        return positions

    def _fold(self, records: list[Received]) -> list[str]:
        """Fold what concerns open sweeps; the sweeps that changed, in order."""
        touched: dict[str, None] = {}
        for r in records:
            self.stats.records += 1
            self._next[TopicPartition(r.topic, r.partition)] = r.offset + 1
            if r.topic != t.SWEEPS and not self.book.knows(r.key):
                self.counts[(r.topic, "skipped")] += 1
                continue
            with self.faults.record("sweep-fold", r):  # any record: counted, skipped
                if (sweep_id := self._fold_one(r)) is not None:
                    touched[sweep_id] = None
        return list(touched)

    def _fold_one(self, r: Received) -> str | None:
        try:
            event = decode_received(r, time_ahead_max_s=self.settings.event_time_ahead_max_s)
        except EnvelopeError:
            self.stats.unreadable += 1
            self.counts[(r.topic, "unreadable")] += 1
            return None
        self.counts[(r.topic, "folded")] += 1
        if (sweep_id := self.book.fold(event)) is not None:
            self.stats.folded += 1
        return sweep_id

    def lag(self) -> dict[tuple[str, int], int]:
        """Records not read yet per partition: log end at the last fetch - next to read."""
        reader = self._reader
        ends = {tp: reader.highwater(tp) for tp in list(self._next)} if reader else {}
        return {(tp.topic, tp.partition): max(0, end - self._next[tp])
                for tp, end in ends.items() if end is not None}  # fmt: skip

    def collectors(self) -> list[Collector]:
        """Prometheus: records by topic and what came of them, lag, open sweeps."""
        return [
            ConsumerCollector({"sweep-controller": self}),
            OpenSweeps(self.book),
            FaultsCollector(self.faults),
            IgnoredCancels(lambda: len(self.book.foreign_cancels)),
        ]

    async def drive_safely(self, sweep_id: str) -> None:
        """Drive a sweep; S3 or Kafka down past their retries, or any other error (counted,
        logged once per type): try it again in a while."""
        try:
            await self.drive(sweep_id)
        except (StorageError, KafkaError) as e:
            log.warning("sweep_retry", sweep_id=sweep_id, error=f"{type(e).__name__}: {e}"[:300],
                        in_s=RETRY_S)  # fmt: skip
            self._retry[sweep_id] = time.monotonic() + RETRY_S
            return
        except Exception as e:  # a bug, or a record no check foresaw: the other sweeps go on
            self.faults.survived("sweep-driving", e)
            self._retry[sweep_id] = time.monotonic() + RETRY_S
            return
        self._retry.pop(sweep_id, None)

    async def drive(self, sweep_id: str) -> None:
        """Act on one sweep until it waits for the log (or ends)."""
        for _ in range(MAX_STEPS):
            sweep = self.book.sweeps.get(sweep_id)
            actions = next_actions(sweep, self.settings.limits) if sweep is not None else []
            if sweep is None or not actions:
                return
            for action in actions:
                events = (
                    await self._register(sweep, action.trial)
                    if isinstance(action, Register)
                    else [action]
                )
                for event in events:
                    await self._send(event)

    async def _send(self, event: BaseModel) -> None:
        await send(self.producer, encode(event, SOURCE))
        self.stats.sent += 1
        self.book.fold(event)

    async def _register(self, sweep: Sweep, winner: Trial) -> list[BaseModel]:
        """Copy the winner's files to models/{sweep_id}/ (metadata.json last); the result events."""
        events = result(sweep, winner, model_prefix(sweep.sweep_id))
        await asyncio.to_thread(copy_model, self.store, winner, events[0])
        log.info("sweep_best_registered", sweep_id=sweep.sweep_id, trial=winner.n)
        return events


class OpenSweeps(Collector):
    """``sparktrainer_sweeps_open`` (sweeps the controller is running) and the plans it ignored,
    counted at scrape time."""

    def __init__(self, book: SweepBook) -> None:
        self.book = book

    def collect(self) -> Iterator[Metric]:
        gauge = GaugeMetricFamily("sparktrainer_sweeps_open", "Sweeps not ended yet")
        gauge.add_metric([], len(self.book.sweeps))
        yield gauge
        refused = CounterMetricFamily(
            "sparktrainer_sweep_plans_refused",
            "Trial plans ignored: they break the trial-id rule or do not fit the sweep's space",
        )
        refused.add_metric([], self.book.plans_refused)
        yield refused


def copy_model(store: ObjectStore, winner: Trial, model: Any) -> None:
    """The winner's files under the sweep's model id; its metadata says where they came from."""
    assert winner.registered is not None
    for artifact in winner.registered.artifacts:
        store.copy(
            model_key(winner.job_id, artifact.path), model_key(model.model_id, artifact.path)
        )
    metadata = store.get_json(model_key(winner.job_id, METADATA))
    metadata.update(model.model_dump(mode="json"))
    metadata["copied_from"] = winner.job_id
    store.put_json(model_key(model.model_id, METADATA), metadata)
