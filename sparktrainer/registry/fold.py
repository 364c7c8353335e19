"""The fold: each record on the log changes the read model exactly once.

``apply`` hands a record's event to every concern's fold for its type *and* stores the offset
of its partition, in one SQLite transaction. A record at or below the stored offset was
applied already and is skipped, so a crash between the two, a redelivery or a replay of the
whole log never counts anything twice.
"""

from __future__ import annotations

import sqlite3
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from sparktrainer.registry import db
from sparktrainer.registry.concern import Concern, Fold
from sparktrainer.registry.concerns import CONCERNS

Folds = Mapping[type, tuple[Fold, ...]]


@dataclass(frozen=True)
class Folded:
    """One consumed record, ready to fold: its coordinates and its event (None: unreadable)."""

    topic: str
    partition: int
    offset: int
    event: Any


def folds_by_type(concerns: Sequence[Concern]) -> Folds:
    """Every concern's fold for each event type, in the concerns' order."""
    by_type: dict[type, list[Fold]] = {}
    for concern in concerns:
        for kind, fold in concern.folds.items():
            by_type.setdefault(kind, []).append(fold)
    return {kind: tuple(folds) for kind, folds in by_type.items()}


FOLDS = folds_by_type(CONCERNS)


def _apply(conn: sqlite3.Connection, rec: Folded, folds: Folds) -> bool:
    stored = db.next_offset(conn, rec.topic, rec.partition)
    if stored is not None and rec.offset < stored:
        return False
    # An event no concern keeps (e.g. a misrouted one) only moves the offset on.
    for fold in folds.get(type(rec.event), ()):
        fold(conn, rec.event)
    db.store_offset(conn, rec.topic, rec.partition, rec.offset + 1)
    return True


def apply(
    conn: sqlite3.Connection,
    topic: str,
    partition: int,
    offset: int,
    event: Any,
    folds: Folds = FOLDS,
) -> bool:
    """Fold one record and store its offset in one transaction; False if already applied.

    ``event`` is a decoded contract event, what a concern's raw decoder made of a record (a
    ``Submission``), or None for a record that could not be read (only its offset moves on).
    """
    with db.transaction(conn):
        return _apply(conn, Folded(topic, partition, offset, event), folds)


def apply_many(
    conn: sqlite3.Connection,
    records: Iterable[Folded],
    folds: Folds = FOLDS,
    on_error: Callable[[Folded, Exception], None] | None = None,
) -> int:
    """Fold a batch in one transaction (same guarantees as :func:`apply`); returns how many.

    The batch folds whole first: each partition's stored offset read once and written once, at
    its end, no savepoint per record. Should a record's fold fail (a value SQLite cannot hold, a
    bug), the batch is rolled back and folded again record by record, each to a savepoint: the
    failing one is rolled back alone and handed to ``on_error``, and its offset still moves on,
    so the batch and the partition go on. Without ``on_error`` the error is raised.
    """
    batch = list(records)
    with db.transaction(conn):
        conn.execute("SAVEPOINT whole_batch")
        try:
            applied = _apply_whole(conn, batch, folds)
        except Exception:
            conn.execute("ROLLBACK TO whole_batch")
            conn.execute("RELEASE whole_batch")
            return _apply_each(conn, batch, folds, on_error)
        conn.execute("RELEASE whole_batch")
    return applied


def _apply_whole(conn: sqlite3.Connection, batch: list[Folded], folds: Folds) -> int:
    """:func:`_apply` for every record, with the offsets kept in memory until the batch's end."""
    next_offsets: dict[tuple[str, int], int | None] = {}
    applied = 0
    for rec in batch:
        where = (rec.topic, rec.partition)
        if where not in next_offsets:
            next_offsets[where] = db.next_offset(conn, *where)
        stored = next_offsets[where]
        if stored is not None and rec.offset < stored:
            continue
        for fold in folds.get(type(rec.event), ()):
            fold(conn, rec.event)
        next_offsets[where] = rec.offset + 1
        applied += 1
    for (topic, partition), offset in next_offsets.items():
        if offset is not None:
            db.store_offset(conn, topic, partition, offset)
    return applied


def _apply_each(
    conn: sqlite3.Connection,
    batch: list[Folded],
    folds: Folds,
    on_error: Callable[[Folded, Exception], None] | None,
) -> int:
    """The batch record by record, each to a savepoint (a failed fold rolls back alone)."""
    applied = 0
    for rec in batch:
        conn.execute("SAVEPOINT one_record")
        try:
            applied += _apply(conn, rec, folds)
        except Exception as e:
            conn.execute("ROLLBACK TO one_record")
            if on_error is None:
                raise
            on_error(rec, e)
            _apply(conn, Folded(rec.topic, rec.partition, rec.offset, None), folds)
        conn.execute("RELEASE one_record")
    return applied
