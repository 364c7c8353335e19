"""Opening the read model (every concern's schema) and reading it from any thread."""

from __future__ import annotations

import contextlib
import sqlite3
import threading
from collections.abc import Callable
from pathlib import Path
from typing import Concatenate, ParamSpec, TypeVar

from sparktrainer.registry import db
from sparktrainer.registry.concerns import CONCERNS
from sparktrainer.registry.jobs import count_by_status

P = ParamSpec("P")
T = TypeVar("T")


def connect(path: Path | str) -> sqlite3.Connection:
    """Open the read model at ``path``, created or migrated to the schema of every concern."""
    return db.open_database(path, CONCERNS)


def read_only(path: Path | str) -> sqlite3.Connection:
    """A connection that only reads (no migration, no write lock), e.g. for a metrics scrape."""
    conn = sqlite3.connect(f"file:{Path(path).resolve()}?mode=ro", uri=True, timeout=5.0)
    conn.row_factory = sqlite3.Row
    return conn


def jobs_by_status(path: Path | str) -> dict[str, int]:
    """How many jobs the read model at ``path`` holds in each status (read-only)."""
    with contextlib.closing(read_only(path)) as conn:
        return count_by_status(conn)


class RegistryStore:
    """The read model at one path, with a connection per thread for readers.

    Queries are the concerns' plain functions (``jobs.get_job``, ``models.list_models``, ...):
    ``store.read(models.get_model, "m1")`` runs one on this thread's connection.
    """

    def __init__(self, path: Path | str) -> None:
        self.path = path
        self._local = threading.local()
        connect(path).close()  # create or migrate once, up front

    def conn(self) -> sqlite3.Connection:
        """This thread's connection (SQLite connections are cheap but not free to open)."""
        conn = getattr(self._local, "conn", None)
        if conn is None:
            conn = self._local.conn = connect(self.path)
        return conn

    def read(
        self,
        query: Callable[Concatenate[sqlite3.Connection, P], T],
        *args: P.args,
        **kwargs: P.kwargs,
    ) -> T:
        """Run ``query(conn, *args, **kwargs)`` on this thread's connection."""
        return query(self.conn(), *args, **kwargs)
