"""The trainer's janitor: removes a deleted model's files once its grace period has passed.

Every trainer runs one. It folds ``sparktrainer.models.changes`` from the start without a
group (every trainer sees every delete: the state is the log, nothing else is kept), and when
the topic is quiet and ``janitor_interval_s`` has passed it sweeps: each model deleted at least
``model_delete_grace_s`` ago and not purged yet loses ``models/{id}/`` (``metadata.json``
first, so it stops looking registered at once), then ``model.purged`` is announced. Two
trainers purging the same model is harmless: deleting is idempotent and the purge event's id is
derived from the model id.

The grace counts from when the broker took the deletion (its record's timestamp, never later
than this trainer's clock: ``contracts/records.py`` broker_time), never from the ``at`` the
deletion claims: a deletion dated 1970 waits its day like any other. At purge time a registry
view of its own (the projector's folds over the registry topics, in memory, caught up with the
log end first) says which aliases point at the model: while one does, its files stay. The same
view says who owns the model (``registry/owners.py``): only the owner's deletion counts, its
grace from the owner's deletion, and the purge is announced in the owner's name
(``contracts/ownership.py``), so a deletion forged by another tenant removes nothing.
"""

from __future__ import annotations

import asyncio
import contextlib
import sqlite3
import time
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime, timedelta

import structlog
from aiokafka import AIOKafkaProducer
from aiokafka.errors import KafkaError

from sparktrainer.bus.kafka import send
from sparktrainer.bus.reader import LogReader
from sparktrainer.bus.supervise import Faults
from sparktrainer.contracts.envelope import EnvelopeError, encode
from sparktrainer.contracts.events import now
from sparktrainer.contracts.model_events import ModelDeleted, ModelPurged
from sparktrainer.contracts.ownership import may_change
from sparktrainer.contracts.records import Received, SkipCounter, broker_time, decode_received
from sparktrainer.contracts.topics import MODELS_CHANGES
from sparktrainer.errors import StorageError
from sparktrainer.registry import owners
from sparktrainer.registry.changes import aliases_at
from sparktrainer.registry.directory import REGISTRY_TOPICS
from sparktrainer.registry.runner import Projector
from sparktrainer.settings import Settings
from sparktrainer.storage.layout import METADATA, model_key, model_prefix
from sparktrainer.storage.s3 import ObjectStore

log = structlog.get_logger(__name__)
SOURCE = "sparktrainer/janitor"
QUIET_S = 0.5  # a fetch that long with nothing new: the topic is quiet (or the interval's)


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
    kept_for_alias: int = 0  # purges put off because an alias pointed at the model
    foreign: int = 0  # deletions or purges by a tenant that does not own the model (once each)


class Janitor:
    """Folds deletions and purges from the log; sweeps the ones that are due.

    :param settings: ``model_delete_grace_s`` and ``janitor_interval_s``, and where Kafka is.
    :param store: the bucket the models live in.
    :param producer: where ``model.purged`` is sent (the trainer's producer).
    :param faults: where what it survives is counted (the trainer's; its own by default).
    """

    def __init__(
        self,
        settings: Settings,
        store: ObjectStore,
        producer: AIOKafkaProducer,
        faults: Faults | None = None,
    ) -> None:
        self.settings, self.store, self.producer = settings, store, producer
        self.faults = faults or Faults()
        # model id -> tenant -> when the broker took that tenant's first delete of it
        self.deleted: dict[str, dict[str, datetime]] = {}
        self.purged: dict[str, set[str]] = {}  # model id -> tenants whose purge was announced
        self.foreign: set[tuple[str, str]] = set()  # (model id, tenant) not its owner
        self.held: set[str] = set()  # due, but an alias points at it (logged once)
        self.stats = JanitorStats()
        self.skipped = SkipCounter("janitor")
        self.registry = Projector(settings, ":memory:", topics=REGISTRY_TOPICS, create_topics=False)
        self._registry_open = False

    def __repr__(self) -> str:
        return f"Janitor({self.stats})"

    def fold(self, event: object, taken_at: datetime) -> None:
        """Take one event of models.changes, which the broker took at ``taken_at``, into
        account (others are ignored); a deletion's own ``at`` is a claim and is not read."""
        if isinstance(event, ModelDeleted):
            by_tenant = self.deleted.setdefault(event.model_id, {})
            if event.tenant not in by_tenant:
                by_tenant[event.tenant] = taken_at
                self.stats.deletions_seen += 1
        elif isinstance(event, ModelPurged):
            self.purged.setdefault(event.model_id, set()).add(event.tenant)

    def due(self, at: datetime, owner_of: Callable[[str], str | None]) -> list[str]:
        """The models whose owner's deletion is past its grace at ``at`` and not purged yet
        (``owner_of``: the registry's owner of a model, None when it has none)."""
        grace = timedelta(seconds=self.settings.model_delete_grace_s)
        out = []
        for model_id, by_tenant in self.deleted.items():
            owner = owner_of(model_id)
            if owner is None:
                continue  # not registered (yet): nobody may delete it
            self._count_foreign(model_id, owner, [*by_tenant, *self.purged.get(model_id, ())])
            taken = [t for tenant, t in by_tenant.items() if may_change(owner, tenant)]
            purged = any(may_change(owner, t) for t in self.purged.get(model_id, ()))
            if taken and not purged and min(taken) + grace <= at:
                out.append(model_id)
        return sorted(out)

    def _count_foreign(self, model_id: str, owner: str, tenants: list[str]) -> None:
        for tenant in tenants:
            if not may_change(owner, tenant) and (model_id, tenant) not in self.foreign:
                self.foreign.add((model_id, tenant))
                self.stats.foreign += 1
                why = "a deletion or purge by a tenant that does not own the model"
                log.warning(
                    "model_change_skipped", model_id=model_id, tenant=tenant, owner=owner, why=why
                )

    async def _view(self) -> sqlite3.Connection:
        """The registry view, caught up with the registry topics' ends as of now."""
        if not self._registry_open:
            await self.registry.start()
            self._registry_open = True
        await self.registry.catch_up(timeout_s=self.settings.validator_registry_timeout_s)
        return self.registry.conn

    async def sweep(self) -> int:
        """Purge every model that is due, no alias pointing at it, and announce it; how many."""
        self.stats.sweeps += 1
        done = 0
        if not self.deleted:
            return 0
        view = await self._view()
        owner_of = {m: owners.model_owner(view, m) for m in self.deleted}
        due = self.due(now(), owner_of.get)
        pointing = {m: aliases_at(view, m) for m in due}
        for model_id in due:
            if pointing[model_id]:
                self.stats.kept_for_alias += 1
                if model_id not in self.held:
                    self.held.add(model_id)
                    log.warning("model_files_kept", model_id=model_id, aliases=pointing[model_id],
                                why="an alias points at the deleted model")  # fmt: skip
                continue
            owner = owner_of[model_id]
            assert owner is not None  # due() passes over a model without one
            with self.faults.record("janitor"):  # one model's failure: the next sweep tries it
                await self._purge(model_id, owner)
                done += 1
        return done

    async def _purge(self, model_id: str, owner: str) -> None:
        files = await asyncio.to_thread(purge_model, self.store, model_id)
        event = ModelPurged(model_id=model_id, files_removed=files, by=SOURCE, tenant=owner)
        await send(self.producer, encode(event, SOURCE))
        self.purged.setdefault(model_id, set()).add(owner)
        self.stats.purged += 1
        self.stats.files_removed += files
        log.info("model_files_removed", model_id=model_id, files=files)

    def _fold_record(self, r: Received) -> None:
        try:
            event = decode_received(r, time_ahead_max_s=self.settings.event_time_ahead_max_s)
        except EnvelopeError as e:
            self.skipped.skip(r, "unreadable", e)
            return
        self.fold(event, broker_time(r))

    async def _close_registry(self) -> None:
        await self.registry.close()
        self._registry_open = False

    async def run(self) -> None:
        """Read models.changes from its start; sweep whenever it is quiet and a sweep is due.

        Until cancelled. A broker outage ends it: run under ``bus.supervise.supervise``, it
        starts again (and reads it all again: the folds repeat) after a backoff."""
        async with LogReader(self.settings) as reader, contextlib.AsyncExitStack() as stack:
            stack.push_async_callback(self._close_registry)
            await reader.assign_at_beginning(await reader.partitions((MODELS_CHANGES,)))
            last_sweep = float("-inf")
            quiet_ms = int(min(QUIET_S, self.settings.janitor_interval_s) * 1000)
            while True:
                records = await reader.read(timeout_ms=quiet_ms)
                for r in records:
                    with self.faults.record("janitor", r):
                        self._fold_record(r)
                if records or time.monotonic() - last_sweep < self.settings.janitor_interval_s:
                    continue
                last_sweep = time.monotonic()
                try:
                    await self.sweep()
                except (KafkaError, StorageError, TimeoutError) as e:  # the next sweep tries again
                    log.warning("janitor_sweep_failed", error=f"{type(e).__name__}: {e}"[:300])
