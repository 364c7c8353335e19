"""One concern of the read model: its tables, the events it folds, and where they come from.

A concern is a module of ``sparktrainer/registry/`` that declares one ``Concern`` (and keeps
its queries as plain functions beside it); ``registry/concerns.py`` lists them. The core
(``db.py``, ``fold.py``) knows no concern's tables: it creates every concern's schema, and
folds each record, in the same transaction as its offset, with every fold registered for the
record's event type.
"""

from __future__ import annotations

import sqlite3
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any

from sparktrainer.contracts.records import Received
from sparktrainer.settings import Limits

Fold = Callable[[sqlite3.Connection, Any], None]
"""Writes what one event changes in this concern's tables (inside the caller's transaction)."""

RawDecoder = Callable[[Received, Limits], Any]
"""Reads a record of a topic whose records are not CloudEvents (None: nothing to fold)."""


@dataclass(frozen=True)
class Concern:
    """A part of the read model: DDL, folds per event type, and the topics it reads.

    ``version`` is bumped when the meaning of the folds changes without a DDL change: either
    change rebuilds the read model from the log (its offsets are shared by every concern).
    """

    name: str
    version: int
    ddl: str  # CREATE TABLE / CREATE INDEX statements, ';'-separated, each IF NOT EXISTS
    topics: tuple[str, ...]
    folds: Mapping[type, Fold]
    raw_topics: Mapping[str, RawDecoder] = field(default_factory=dict)

    def statements(self) -> list[str]:
        """The DDL, one statement each."""
        return [s.strip() for s in self.ddl.split(";") if s.strip()]
