"""The names concern: registered names, their versions, their aliases and every alias move.

A named registration (``model.registered`` with ``register_as``) is keyed by its name, so
every version of one name is folded in its partition's order, live or in a rebuild: the next
version is assigned here, once per (name, model id). Alias events (keyed by the name too)
point at a *version*; which model that is gets joined when read, so the two topics may be
folded in any interleaving. A move is known by its event id: a replayed copy changes nothing.
"""

from __future__ import annotations

import sqlite3
from collections.abc import Sequence
from typing import Any

from sparktrainer.contracts import topics as t
from sparktrainer.contracts.events import ModelRegistered
from sparktrainer.contracts.model_events import ModelAliasRemoved, ModelAliasSet
from sparktrainer.contracts.ownership import may_register
from sparktrainer.registry import owners
from sparktrainer.registry.concern import Concern, Fold
from sparktrainer.registry.rows import Page, Row, bounded, iso

DDL = """
CREATE TABLE IF NOT EXISTS model_versions (
    name TEXT NOT NULL,
    version INTEGER NOT NULL,
    model_id TEXT NOT NULL,
    registered_at TEXT NOT NULL,
    PRIMARY KEY (name, version),
    UNIQUE (model_id, name)
);
CREATE TABLE IF NOT EXISTS model_aliases (
    name TEXT NOT NULL,
    alias TEXT NOT NULL,
    version INTEGER NOT NULL,
    set_by TEXT,
    set_at TEXT NOT NULL,
    PRIMARY KEY (name, alias)
) WITHOUT ROWID;
CREATE TABLE IF NOT EXISTS alias_history (
    event_id TEXT PRIMARY KEY,
    name TEXT NOT NULL,
    alias TEXT NOT NULL,
    seq INTEGER NOT NULL,
    action TEXT NOT NULL,
    version INTEGER,
    previous_version INTEGER,
    by TEXT,
    at TEXT NOT NULL,
    reason TEXT
);
CREATE UNIQUE INDEX IF NOT EXISTS alias_history_order ON alias_history (name, alias, seq);
"""


def _version(conn: sqlite3.Connection, ev: ModelRegistered) -> None:
    """The next version of the name, unless this model already is one of its versions.

    Only the name's owner adds versions (contracts/ownership.py): another tenant's registration
    of it is counted and changes nothing, so ``NAME@latest`` stays the owner's model.
    """
    name = ev.register_as
    if name is None or owners.model_owner(conn, ev.model_id) != ev.tenant:
        return  # unnamed, or a registration of another tenant's model (models.py counted it)
    claimed = owners.claim_name(conn, ev)
    owner = owners.name_owner(conn, name)
    assert owner is not None  # claimed now or before
    if not may_register(owner, ev.tenant):
        owners.refuse(conn, ev, "name", name, owner)
        return
    known = conn.execute(
        "SELECT 1 FROM model_versions WHERE name = ? AND model_id = ?", (name, ev.model_id)
    ).fetchone()
    if known is None:
        conn.execute(
            "INSERT INTO model_versions (name, version, model_id, registered_at) "
            "SELECT ?, coalesce(max(version), 0) + 1, ?, ? FROM model_versions WHERE name = ?",
            (name, ev.model_id, iso(ev.created_at), name),
        )
    # A model registered under two names (only a hand-made event does that) shows the first
    # name in order: the same whatever order the partitions were folded in.
    conn.execute(
        "UPDATE models SET (registered_name, version) = (SELECT name, version FROM "
        "model_versions WHERE model_id = ? ORDER BY name LIMIT 1) WHERE model_id = ?",
        (ev.model_id, ev.model_id),
    )
    if claimed:  # alias moves folded before the name had an owner count now, in their order
        for change in owners.unparked(conn, "name", name):
            _FOLDS[type(change)](conn, change)


def _seen(conn: sqlite3.Connection, event_id: str) -> bool:
    row = conn.execute("SELECT 1 FROM alias_history WHERE event_id = ?", (event_id,)).fetchone()
    return row is not None


def _move(
    conn: sqlite3.Connection, ev: ModelAliasSet | ModelAliasRemoved, version: int | None
) -> None:
    """Record one alias move (set: ``version``; removed: None) and apply it."""
    if _seen(conn, ev.event_id()):
        return  # a replayed copy of a move already folded
    key = (ev.name, ev.alias)
    current = alias_target(conn, *key)
    seq = conn.execute(
        "SELECT coalesce(max(seq), 0) + 1 FROM alias_history WHERE name = ? AND alias = ?", key
    ).fetchone()[0]
    conn.execute(
        "INSERT INTO alias_history (event_id, name, alias, seq, action, version, "
        "previous_version, by, at, reason) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
        (ev.event_id(), *key, seq, "set" if version else "removed", version, current, ev.by,
         iso(ev.at), ev.reason),
    )  # fmt: skip
    if version is None:
        conn.execute("DELETE FROM model_aliases WHERE name = ? AND alias = ?", key)
        return
    conn.execute(
        "INSERT OR REPLACE INTO model_aliases (name, alias, version, set_by, set_at) "
        "VALUES (?, ?, ?, ?, ?)",
        (*key, version, ev.by, iso(ev.at)),
    )


def _alias_set(conn: sqlite3.Connection, ev: ModelAliasSet) -> None:
    if owners.admitted(conn, ev):
        _move(conn, ev, ev.version)


def _alias_removed(conn: sqlite3.Connection, ev: ModelAliasRemoved) -> None:
    if not owners.admitted(conn, ev):
        return
    if alias_target(conn, ev.name, ev.alias) is None:
        return  # removed already (a repeated DELETE raced the fold): nothing moved, no row
    _move(conn, ev, None)


_FOLDS: dict[type, Fold] = {ModelAliasSet: _alias_set, ModelAliasRemoved: _alias_removed}
NAMES = Concern(
    name="names",
    version=3,  # v3: only a name's owner adds versions and moves its aliases (owners.py)
    ddl=DDL,
    topics=(t.MODELS_REGISTERED, t.MODELS_CHANGES),
    folds={ModelRegistered: _version, **_FOLDS},
)


# --- queries -------------------------------------------------------------------------------


def alias_target(conn: sqlite3.Connection, name: str, alias: str) -> int | None:
    """The version ``name@alias`` points at now; None when it points nowhere."""
    row = conn.execute(
        "SELECT version FROM model_aliases WHERE name = ? AND alias = ?", (name, alias)
    ).fetchone()
    return None if row is None else int(row[0])


def version_model(conn: sqlite3.Connection, name: str, version: int) -> str | None:
    """The model id of ``name:version``; None when no such version was registered."""
    row = conn.execute(
        "SELECT model_id FROM model_versions WHERE name = ? AND version = ?", (name, version)
    ).fetchone()
    return None if row is None else str(row[0])


def latest_version(conn: sqlite3.Connection, name: str) -> int | None:
    """The highest version of ``name`` that is not deleted (``NAME@latest``)."""
    row = conn.execute(
        "SELECT max(v.version) FROM model_versions v LEFT JOIN model_retirement r "
        "ON r.model_id = v.model_id WHERE v.name = ? AND r.status IS NOT 'deleted'",
        (name,),
    ).fetchone()
    return None if row is None or row[0] is None else int(row[0])


def names_of(conn: sqlite3.Connection, model_ids: Sequence[str]) -> dict[str, dict[str, Any]]:
    """Per model id: its versions (``[{name, version}]``) and the aliases that point at it."""
    out: dict[str, dict[str, Any]] = {m: {"versions": [], "aliases": []} for m in model_ids}
    if not model_ids:
        return out
    marks = ", ".join("?" * len(model_ids))
    for r in conn.execute(
        f"SELECT v.model_id, v.name, v.version, a.alias FROM model_versions v "
        f"LEFT JOIN model_aliases a ON a.name = v.name AND a.version = v.version "
        f"WHERE v.model_id IN ({marks}) ORDER BY v.name, a.alias",
        list(model_ids),
    ):
        entry = out[r["model_id"]]
        version = {"name": r["name"], "version": r["version"]}
        if version not in entry["versions"]:
            entry["versions"].append(version)
        if r["alias"] is not None:
            entry["aliases"].append(f"{r['name']}@{r['alias']}")
    return out


def list_names(conn: sqlite3.Connection, limit: int = 50, offset: int = 0) -> Page:
    """Registered names, alphabetically: owner, how many versions, the latest, the aliases."""
    limit, offset = bounded(limit, offset)
    total = conn.execute("SELECT count(DISTINCT name) FROM model_versions").fetchone()[0]
    rows = conn.execute(
        "SELECT v.name, o.tenant, count(*) AS versions, max(v.version) AS latest_version, "
        "min(v.registered_at) AS created_at, max(v.registered_at) AS updated_at "
        "FROM model_versions v JOIN name_owners o ON o.name = v.name "
        "GROUP BY v.name ORDER BY v.name LIMIT ? OFFSET ?",
        (limit, offset),
    ).fetchall()
    items = [{**dict(r), "aliases": _aliases(conn, r["name"])} for r in rows]
    return Page(items=items, total=total, limit=limit, offset=offset)


def _aliases(conn: sqlite3.Connection, name: str) -> dict[str, int]:
    rows = conn.execute(
        "SELECT alias, version FROM model_aliases WHERE name = ? ORDER BY alias", (name,)
    ).fetchall()
    return {r["alias"]: r["version"] for r in rows}


def get_name(conn: sqlite3.Connection, name: str) -> Row | None:
    """One name: its owner, every version (model id, when, status), every alias and who set it."""
    versions = conn.execute(
        "SELECT v.version, v.model_id, v.registered_at, coalesce(r.status, 'live') AS status "
        "FROM model_versions v LEFT JOIN model_retirement r ON r.model_id = v.model_id "
        "WHERE v.name = ? ORDER BY v.version",
        (name,),
    ).fetchall()
    if not versions:
        return None
    aliases = conn.execute(
        "SELECT alias, version, set_by, set_at FROM model_aliases WHERE name = ? ORDER BY alias",
        (name,),
    ).fetchall()
    return {
        "name": name,
        "tenant": owners.name_owner(conn, name),  # who adds versions and moves its aliases
        "versions": [dict(v) for v in versions],
        "aliases": {a["alias"]: dict(a) for a in aliases},
        "latest_version": latest_version(conn, name),
    }


def alias_history(conn: sqlite3.Connection, name: str, alias: str | None = None) -> list[Row]:
    """Every move of the name's aliases (or of one), oldest first: who, when, from, to."""
    clause, params = ("AND alias = ?", [name, alias]) if alias else ("", [name])
    rows = conn.execute(
        "SELECT alias, seq, action, version, previous_version, by, at, reason FROM "
        f"alias_history WHERE name = ? {clause} ORDER BY alias, seq",
        params,
    ).fetchall()
    return [dict(r) for r in rows]
