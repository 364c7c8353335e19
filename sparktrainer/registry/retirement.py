"""The retirement concern: archived and deleted models, and when a deleted one's files went.

Retirement events are keyed by the model id, so one model's are folded in order, and only its
owner's count (``owners.py``; one folded before the registration waits for it). Deleted is
final, and the first archive's and the first delete's who, when and why are the ones kept; a
deleted model's row stays in ``models`` as a tombstone. The status is copied onto the model's
row (for the lists' index) from both sides, so registration and retirement may be folded in
either order.
"""

from __future__ import annotations

import sqlite3
from collections.abc import Sequence

from sparktrainer.contracts import topics as t
from sparktrainer.contracts.events import ModelRegistered
from sparktrainer.contracts.model_events import ModelArchived, ModelDeleted, ModelPurged
from sparktrainer.registry import owners
from sparktrainer.registry.concern import Concern, Fold
from sparktrainer.registry.rows import Row, iso

DDL = """
CREATE TABLE IF NOT EXISTS model_retirement (
    model_id TEXT PRIMARY KEY,
    status TEXT NOT NULL,
    archived_by TEXT,
    archived_at TEXT,
    archive_reason TEXT,
    deleted_by TEXT,
    deleted_at TEXT,
    delete_reason TEXT,
    files_removed INTEGER,
    files_removed_at TEXT
) WITHOUT ROWID;
"""


def _copy_status(conn: sqlite3.Connection, model_id: str) -> None:
    conn.execute(
        "UPDATE models SET status = (SELECT status FROM model_retirement WHERE model_id = ?) "
        "WHERE model_id = ? AND EXISTS (SELECT 1 FROM model_retirement WHERE model_id = ?)",
        (model_id, model_id, model_id),
    )


def _archived(conn: sqlite3.Connection, ev: ModelArchived) -> None:
    if not owners.admitted(conn, ev):
        return
    conn.execute(
        "INSERT INTO model_retirement (model_id, status, archived_by, archived_at, "
        "archive_reason) VALUES (?, 'archived', ?, ?, ?) ON CONFLICT (model_id) DO UPDATE SET "
        "archived_by = CASE WHEN archived_at IS NULL THEN excluded.archived_by "
        "ELSE archived_by END, "
        "archive_reason = CASE WHEN archived_at IS NULL THEN excluded.archive_reason "
        "ELSE archive_reason END, archived_at = coalesce(archived_at, excluded.archived_at) "
        "WHERE status != 'deleted'",  # archiving a deleted model changes nothing
        (ev.model_id, ev.by, iso(ev.at), ev.reason),
    )
    _copy_status(conn, ev.model_id)


def _deleted(conn: sqlite3.Connection, ev: ModelDeleted) -> None:
    if not owners.admitted(conn, ev):
        return
    conn.execute(
        "INSERT INTO model_retirement (model_id, status, deleted_by, deleted_at, delete_reason) "
        "VALUES (?, 'deleted', ?, ?, ?) ON CONFLICT (model_id) DO UPDATE SET status = 'deleted', "
        "deleted_by = CASE WHEN deleted_at IS NULL THEN excluded.deleted_by ELSE deleted_by END, "
        "delete_reason = CASE WHEN deleted_at IS NULL THEN excluded.delete_reason "
        "ELSE delete_reason END, deleted_at = coalesce(deleted_at, excluded.deleted_at)",
        (ev.model_id, ev.by, iso(ev.at), ev.reason),
    )
    _copy_status(conn, ev.model_id)


def _purged(conn: sqlite3.Connection, ev: ModelPurged) -> None:
    """The files are gone: a purge without a delete (a hand-made event) also retires it."""
    if not owners.admitted(conn, ev):
        return
    conn.execute(
        "INSERT INTO model_retirement (model_id, status, files_removed, files_removed_at) "
        "VALUES (?, 'deleted', ?, ?) ON CONFLICT (model_id) DO UPDATE SET status = 'deleted', "
        "files_removed = coalesce(files_removed, excluded.files_removed), "
        "files_removed_at = coalesce(files_removed_at, excluded.files_removed_at)",
        (ev.model_id, ev.files_removed, iso(ev.at)),
    )
    _copy_status(conn, ev.model_id)


def _registered(conn: sqlite3.Connection, ev: ModelRegistered) -> None:
    """Retirements folded before the registration count now (the owner's), in their order."""
    for change in owners.unparked(conn, "model", ev.model_id):
        _FOLDS[type(change)](conn, change)
    _copy_status(conn, ev.model_id)


_FOLDS: dict[type, Fold] = {ModelArchived: _archived, ModelDeleted: _deleted, ModelPurged: _purged}
RETIREMENT = Concern(
    name="retirement",
    version=2,  # v2: only a model's owner retires it (owners.py)
    ddl=DDL,
    topics=(t.MODELS_CHANGES, t.MODELS_REGISTERED),
    folds={**_FOLDS, ModelRegistered: _registered},
)


def retirements_of(conn: sqlite3.Connection, model_ids: Sequence[str]) -> dict[str, Row]:
    """The retirement record of each of these models that has one."""
    if not model_ids:
        return {}
    marks = ", ".join("?" * len(model_ids))
    rows = conn.execute(
        f"SELECT * FROM model_retirement WHERE model_id IN ({marks})", list(model_ids)
    ).fetchall()
    return {r["model_id"]: {k: r[k] for k in r.keys() if r[k] is not None} for r in rows}
