"""Model directories: resolving references for the validation checks (``contracts.refs``).

- :class:`ReadModelDirectory` resolves against a read model as it is (the API's /validate,
  the CLI after its own catch-up).
- :class:`RegistryDirectory` is the validator's: a read model of its own over the registry
  topics only, caught up with the log end *as of the lookup* before each resolution, so a
  fine-tune sees every registry change the broker acknowledged before it was judged.
  Concurrent lookups share a catch-up that began after they asked; see docs/ARCHITECTURE.md.

Both also say who owns a model name (``name_owner``), for the validator's ``register_as`` check.
"""

from __future__ import annotations

import asyncio
import sqlite3
import time
from collections.abc import Callable
from pathlib import Path

from sparktrainer.contracts import topics as t
from sparktrainer.contracts.refs import FoundModel, ModelRef
from sparktrainer.registry import owners
from sparktrainer.registry.resolve import resolve_ref
from sparktrainer.registry.runner import Projector
from sparktrainer.registry.store import RegistryStore
from sparktrainer.settings import Settings

REGISTRY_TOPICS = (t.MODELS_REGISTERED, t.MODELS_CHANGES)


class ReadModelDirectory:
    """Resolves against a read model as it stands (``conn`` gives this thread's connection)."""

    def __init__(self, conn: Callable[[], sqlite3.Connection]) -> None:
        self._conn = conn

    def resolve(self, ref: ModelRef) -> FoundModel:
        """See :func:`registry.resolve.resolve_ref`."""
        return resolve_ref(self._conn(), ref)

    def name_owner(self, name: str) -> str | None:
        """See :func:`registry.owners.name_owner`."""
        return owners.name_owner(self._conn(), name)


class RegistryDirectory:
    """The validator's registry view: caught up with the log before every lookup.

    :param settings: where Kafka is; ``validator_registry_staleness_s`` lets a lookup reuse a
        catch-up that began that long before it, ``validator_registry_timeout_s`` bounds one.
    :param db_path: its SQLite file (default ``$SPARKTRAINER_HOME/validator/registry.sqlite3``).
    """

    def __init__(self, settings: Settings, db_path: Path | str | None = None) -> None:
        self.settings = settings
        self.db_path = db_path or settings.home / "validator" / "registry.sqlite3"
        self.projector = Projector(settings, self.db_path, topics=REGISTRY_TOPICS)
        self.catch_ups = 0
        self._store: RegistryStore | None = None
        self._loop: asyncio.AbstractEventLoop | None = None
        self._lock = asyncio.Lock()
        self._fresh_since = float("-inf")  # when the last finished catch-up began

    async def start(self) -> None:
        """Open the read model and assign the registry topics (reads nothing yet)."""
        await self.projector.start()
        self._store = RegistryStore(self.db_path)
        self._loop = asyncio.get_running_loop()

    async def close(self) -> None:
        """Stop reading and close the database."""
        await self.projector.close()

    async def __aenter__(self) -> RegistryDirectory:
        await self.start()
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.close()

    async def fresh(self, asked_at: float) -> None:
        """Return once a catch-up that began at or after ``asked_at`` (monotonic) has finished."""
        async with self._lock:
            if self._fresh_since >= asked_at:
                return
            began = time.monotonic()
            await self.projector.catch_up(timeout_s=self.settings.validator_registry_timeout_s)
            self._fresh_since = began
            self.catch_ups += 1

    def resolve(self, ref: ModelRef) -> FoundModel:
        """Catch up, then resolve (called from a worker thread, never the event loop's)."""
        return resolve_ref(self._caught_up(), ref)

    def name_owner(self, name: str) -> str | None:
        """Catch up, then tell who owns ``name`` (from a worker thread, as :meth:`resolve`)."""
        return owners.name_owner(self._caught_up(), name)

    def _caught_up(self) -> sqlite3.Connection:
        """This thread's connection, once a catch-up fresh enough for this lookup is done."""
        if self._loop is None or self._store is None:
            raise RuntimeError("RegistryDirectory.start() has not been called")
        asked_at = time.monotonic() - self.settings.validator_registry_staleness_s
        future = asyncio.run_coroutine_threadsafe(self.fresh(asked_at), self._loop)
        future.result(timeout=self.settings.validator_registry_timeout_s + 5)
        return self._store.conn()
