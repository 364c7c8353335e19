"""The trainer's janitor: removes a deleted model's files once its grace period has passed.

Every trainer runs one. It folds ``sparktrainer.models.changes`` from the start without a
group (every trainer sees every delete: the state is the log, nothing else is kept), and when
the topic is quiet and ``janitor_interval_s`` has passed it sweeps: each model deleted at least
``model_delete_grace_s`` ago and not purged yet loses ``models/{id}/`` (``metadata.json``
first, so it stops looking registered at once), then ``model.purged`` is announced. Two
trainers purging the same model is harmless: deleting is idempotent and the purge event's id is
derived from the model id.
"""

from __future__ import annotations

import asyncio
import contextlib
import time
from dataclasses import dataclass
from datetime import datetime, timedelta

import structlog
from aiokafka import AIOKafkaProducer
from aiokafka.errors import KafkaError

from sparktrainer.bus.kafka import send
from sparktrainer.bus.reader import LogReader
from sparktrainer.contracts.envelope import EnvelopeError, decode, encode
from sparktrainer.contracts.events import now
from sparktrainer.contracts.model_events import ModelDeleted, ModelPurged
from sparktrainer.contracts.topics import MODELS_CHANGES
from sparktrainer.errors import StorageError
from sparktrainer.settings import Settings
from sparktrainer.storage.layout import METADATA, model_key, model_prefix
from sparktrainer.storage.s3 import ObjectStore

log = structlog.get_logger(__name__)
SOURCE = "sparktrainer/janitor"


def purge_model(store: ObjectStore, model_id: str) -> int:
    """Delete every file of a model, ``metadata.json`` first; how many were deleted."""
    metadata = model_key(model_id, METADATA)
    removed = 0
    if store.exists(metadata):
        store.delete(metadata)
        removed = 1
    return removed + store.delete_prefix(model_prefix(model_id))


@dataclass
class JanitorStats:
    """Counters tests and operators read."""

    deletions_seen: int = 0
    sweeps: int = 0
    purged: int = 0
    files_removed: int = 0


class Janitor:
    """Folds deletions and purges from the log; sweeps the ones that are due.

    :param settings: ``model_delete_grace_s`` and ``janitor_interval_s``, and where Kafka is.
    :param store: the bucket the models live in.
    :param producer: where ``model.purged`` is sent (the trainer's producer).
    """

    def __init__(self, settings: Settings, store: ObjectStore, producer: AIOKafkaProducer) -> None:
        self.settings, self.store, self.producer = settings, store, producer
        self.deleted: dict[str, datetime] = {}
        self.purged: set[str] = set()
        self.stats = JanitorStats()

    def __repr__(self) -> str:
        return f"Janitor({self.stats})"

    def fold(self, event: object) -> None:
        """Take one event of models.changes into account (others are ignored)."""
        if isinstance(event, ModelDeleted) and event.model_id not in self.deleted:
            self.deleted[event.model_id] = event.at
            self.stats.deletions_seen += 1
        elif isinstance(event, ModelPurged):
            self.purged.add(event.model_id)

    def due(self, at: datetime) -> list[str]:
        """The deleted models whose grace period has passed at ``at`` and that are not purged."""
        grace = timedelta(seconds=self.settings.model_delete_grace_s)
        return sorted(
            m for m, t in self.deleted.items() if m not in self.purged and t + grace <= at
        )

    async def sweep(self) -> int:
        """Purge every model that is due and announce it; how many were purged."""
        self.stats.sweeps += 1
        done = 0
        for model_id in self.due(now()):
            files = await asyncio.to_thread(purge_model, self.store, model_id)
            event = ModelPurged(model_id=model_id, files_removed=files, by=SOURCE)
            await send(self.producer, encode(event, SOURCE))
            self.purged.add(model_id)
            self.stats.purged += 1
            self.stats.files_removed += files
            log.info("model_files_removed", model_id=model_id, files=files)
            done += 1
        return done

    async def run(self) -> None:
        """Follow models.changes and sweep, until cancelled; a broker outage only pauses it."""
        while True:
            try:
                await self._follow()
            except KafkaError as e:  # read it all again once the broker answers: folds repeat
                log.warning("janitor_restart", error=f"{type(e).__name__}: {e}"[:300])
                await asyncio.sleep(max(1.0, self.settings.janitor_interval_s))

    async def _follow(self) -> None:
        """Read models.changes from its start; sweep whenever it is quiet and a sweep is due."""
        async with LogReader(self.settings) as reader:
            await reader.assign_at_beginning(await reader.partitions((MODELS_CHANGES,)))
            last_sweep = float("-inf")
            while True:
                records = await reader.read(timeout_ms=500)
                for r in records:
                    with contextlib.suppress(EnvelopeError):
                        self.fold(decode(r.value, r.headers))
                if records or time.monotonic() - last_sweep < self.settings.janitor_interval_s:
                    continue
                last_sweep = time.monotonic()
                try:
                    await self.sweep()
                except (KafkaError, StorageError) as e:  # the next sweep tries again
                    log.warning("janitor_sweep_failed", error=f"{type(e).__name__}: {e}"[:300])
