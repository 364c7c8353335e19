"""The owners concern: who owns each name and model, and the records the rule kept out.

The rule is ``contracts/ownership.py``; this is where the read model keeps what it needs. A
name's owner is the tenant of the first registration of it folded (its partition's order); a
model's is its registration's tenant (``models.tenant``, the first one kept). The folds of
``registry/models.py``, ``names.py`` and ``retirement.py`` ask :func:`admitted` before a change
counts: the owner's change counts; another tenant's is recorded in ``foreign_records`` and
changes nothing; one whose name or model has no registration folded yet is parked and folded
once it has (the two topics are folded in any interleaving, a rebuild too), so the outcome is
the same in every order.
"""

from __future__ import annotations

import sqlite3
from typing import Any

from pydantic import ValidationError

from sparktrainer.contracts.events import ModelRegistered
from sparktrainer.contracts.model_events import MODEL_EVENTS, ModelChange
from sparktrainer.contracts.ownership import SubjectKind, change_subject, may_change
from sparktrainer.registry.concern import Concern
from sparktrainer.registry.rows import Row

DDL = """
CREATE TABLE IF NOT EXISTS name_owners (
    name TEXT PRIMARY KEY,
    tenant TEXT NOT NULL,
    model_id TEXT NOT NULL  -- its first version
) WITHOUT ROWID;
CREATE TABLE IF NOT EXISTS parked_changes (
    seq INTEGER PRIMARY KEY AUTOINCREMENT,
    kind TEXT NOT NULL,  -- 'name' or 'model': whose registration it waits for
    subject TEXT NOT NULL,
    ce_type TEXT NOT NULL,
    event TEXT NOT NULL
);
CREATE INDEX IF NOT EXISTS parked_by_subject ON parked_changes (kind, subject, seq);
CREATE TABLE IF NOT EXISTS foreign_records (
    event_id TEXT NOT NULL,
    kind TEXT NOT NULL,
    subject TEXT NOT NULL,
    ce_type TEXT NOT NULL,
    tenant TEXT NOT NULL,  -- whose it said it was
    owner TEXT NOT NULL,  -- whose the name or model is
    PRIMARY KEY (event_id, kind, subject)
);
"""

OWNERS = Concern(name="owners", version=1, ddl=DDL, topics=(), folds={})
_CHANGE_TYPES: dict[str, type[ModelChange]] = {c.ce_type: c for c in MODEL_EVENTS}


def name_owner(conn: sqlite3.Connection, name: str) -> str | None:
    """The tenant that owns ``name``; None when no registration of it was folded."""
    row = conn.execute("SELECT tenant FROM name_owners WHERE name = ?", (name,)).fetchone()
    return None if row is None else str(row[0])


def model_owner(conn: sqlite3.Connection, model_id: str) -> str | None:
    """The tenant that owns a model; None when its registration was not folded."""
    row = conn.execute("SELECT tenant FROM models WHERE model_id = ?", (model_id,)).fetchone()
    return None if row is None else str(row[0])


def owner_of(conn: sqlite3.Connection, kind: SubjectKind, subject: str) -> str | None:
    """The owner of a name or a model (None: not known yet)."""
    return name_owner(conn, subject) if kind == "name" else model_owner(conn, subject)


def claim_name(conn: sqlite3.Connection, ev: ModelRegistered) -> bool:
    """Make the registration's tenant the owner of its unowned name; True when it was unowned."""
    assert ev.register_as is not None
    cur = conn.execute(
        "INSERT OR IGNORE INTO name_owners (name, tenant, model_id) VALUES (?, ?, ?)",
        (ev.register_as, ev.tenant, ev.model_id),
    )
    return cur.rowcount == 1


def refuse(
    conn: sqlite3.Connection,
    ev: ModelChange | ModelRegistered,
    kind: SubjectKind,
    subject: str,
    owner: str,
) -> None:
    """Count a record of a tenant that does not own what it would change (once per record)."""
    conn.execute(
        "INSERT OR IGNORE INTO foreign_records (event_id, kind, subject, ce_type, tenant, owner) "
        "VALUES (?, ?, ?, ?, ?, ?)",
        (ev.event_id(), kind, subject, ev.ce_type, ev.tenant, owner),
    )


def admitted(conn: sqlite3.Connection, change: ModelChange) -> bool:
    """Whether a change counts now: the owner's does; a foreign one is counted; else parked."""
    kind, subject = change_subject(change)
    owner = owner_of(conn, kind, subject)
    if owner is None:
        conn.execute(
            "INSERT INTO parked_changes (kind, subject, ce_type, event) VALUES (?, ?, ?, ?)",
            (kind, subject, change.ce_type, change.model_dump_json()),
        )
        return False
    if not may_change(owner, change.tenant):
        refuse(conn, change, kind, subject, owner)
        return False
    return True


def unparked(conn: sqlite3.Connection, kind: SubjectKind, subject: str) -> list[ModelChange]:
    """The changes that waited for this name's or model's registration, oldest first (taken)."""
    rows = conn.execute(
        "DELETE FROM parked_changes WHERE kind = ? AND subject = ? RETURNING seq, ce_type, event",
        (kind, subject),
    ).fetchall()
    out = []
    for r in sorted(rows, key=lambda r: int(r["seq"])):
        try:  # our own dump; should a stricter contract refuse it, the registration still folds
            out.append(_CHANGE_TYPES[r["ce_type"]].model_validate_json(r["event"]))
        except (KeyError, ValidationError):
            continue
    return out


def foreign_count(conn: sqlite3.Connection) -> int:
    """How many records the rule kept out."""
    return int(conn.execute("SELECT count(*) FROM foreign_records").fetchone()[0])


def foreign_records(conn: sqlite3.Connection, limit: int = 100) -> dict[str, Any]:
    """How many records the rule kept out, and the latest ``limit`` of them."""
    total = foreign_count(conn)
    rows = conn.execute(
        "SELECT event_id, kind, subject, ce_type, tenant, owner FROM foreign_records "
        "ORDER BY rowid DESC LIMIT ?",
        (max(0, min(limit, 1000)),),
    ).fetchall()
    items: list[Row] = [dict(r) for r in rows]
    return {"total": int(total), "items": items}
