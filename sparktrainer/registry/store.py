"""The registry read model in SQLite: schema, connections and the queries the API and CLI serve.

The database is disposable: everything in it is folded from the Kafka log by
``sparktrainer.registry.projector``, and the consumed offsets live in the same database (and
the same transactions), so it can always be rebuilt from the beginning of the log. A schema
change simply wipes it, and the projector replays from the start.
"""

from __future__ import annotations

import json
import sqlite3
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

SCHEMA_VERSION = "5"
MAX_PAGE = 1000
MAX_LINEAGE_DEPTH = 64

_SCHEMA = """
CREATE TABLE IF NOT EXISTS meta (key TEXT PRIMARY KEY, value TEXT NOT NULL);
CREATE TABLE IF NOT EXISTS models (
    model_id TEXT PRIMARY KEY,
    job_id TEXT NOT NULL,
    name TEXT NOT NULL,
    framework TEXT NOT NULL,
    task TEXT NOT NULL,
    architecture TEXT NOT NULL,
    artifacts TEXT NOT NULL,
    metrics TEXT NOT NULL,
    base_model_id TEXT,
    lineage TEXT NOT NULL,
    tags TEXT NOT NULL,
    license TEXT,
    domain TEXT,
    created_at TEXT NOT NULL,
    description TEXT,
    storage_prefix TEXT NOT NULL
);
CREATE INDEX IF NOT EXISTS models_by_created ON models (created_at DESC, model_id);
CREATE INDEX IF NOT EXISTS models_by_framework ON models (framework, created_at DESC);
CREATE INDEX IF NOT EXISTS models_by_base ON models (base_model_id, created_at DESC);
CREATE TABLE IF NOT EXISTS model_tags (
    model_id TEXT NOT NULL,
    tag TEXT NOT NULL,
    created_at TEXT NOT NULL,
    PRIMARY KEY (model_id, tag)
) WITHOUT ROWID;
CREATE INDEX IF NOT EXISTS model_tags_by_tag ON model_tags (tag, created_at DESC, model_id);
CREATE TABLE IF NOT EXISTS jobs (
    job_id TEXT PRIMARY KEY,
    name TEXT,
    framework TEXT,
    type TEXT,
    config_kind TEXT,
    status TEXT NOT NULL,
    status_at TEXT NOT NULL,
    errors TEXT NOT NULL,
    warnings TEXT NOT NULL,
    progress TEXT,
    checkpoint TEXT,
    metrics TEXT,
    model_id TEXT,
    reason TEXT,
    device TEXT,
    worker TEXT,
    attempt INTEGER NOT NULL,
    created_at TEXT NOT NULL,
    updated_at TEXT NOT NULL
);
CREATE INDEX IF NOT EXISTS jobs_by_updated ON jobs (updated_at DESC, job_id);
CREATE INDEX IF NOT EXISTS jobs_by_status ON jobs (status, updated_at DESC);
CREATE TABLE IF NOT EXISTS offsets (
    topic TEXT NOT NULL,
    partition INTEGER NOT NULL,
    next_offset INTEGER NOT NULL,
    PRIMARY KEY (topic, partition)
);
"""
_TABLES = ("models", "model_tags", "jobs", "offsets")

MODEL_JSON = ("architecture", "artifacts", "metrics", "lineage", "tags")
JOB_JSON = ("errors", "warnings", "progress", "checkpoint", "metrics")
_SUMMARY = "model_id, name, framework, task, base_model_id, created_at"


@dataclass(frozen=True)
class Page:
    """One page of a listing and the size of the whole result."""

    items: list[dict[str, Any]]
    total: int
    limit: int
    offset: int

    def as_dict(self, name: str) -> dict[str, Any]:
        """The page as the API answers it, under ``name``."""
        return {name: self.items, "total": self.total, "limit": self.limit, "offset": self.offset}


def connect(path: Path | str) -> sqlite3.Connection:
    """Open (and create or migrate) the read model; transactions are explicit (autocommit)."""
    if str(path) != ":memory:":
        Path(path).parent.mkdir(parents=True, exist_ok=True)
    conn = sqlite3.connect(str(path), isolation_level=None, check_same_thread=False, timeout=30.0)
    conn.row_factory = sqlite3.Row
    conn.execute("PRAGMA journal_mode=WAL")
    # WAL + NORMAL: a commit survives a process crash; an OS crash may lose the last
    # transactions, and with them their offsets, so they are simply consumed again.
    conn.execute("PRAGMA synchronous=NORMAL")
    conn.execute("PRAGMA busy_timeout=30000")
    _migrate(conn)
    return conn


def _migrate(conn: sqlite3.Connection) -> None:
    with transaction(conn):
        conn.execute("CREATE TABLE IF NOT EXISTS meta (key TEXT PRIMARY KEY, value TEXT NOT NULL)")
        row = conn.execute("SELECT value FROM meta WHERE key = 'schema_version'").fetchone()
        if row is not None and row[0] == SCHEMA_VERSION:
            return
        if row is not None:  # an older read model: drop it, the log rebuilds it
            for table in _TABLES:
                conn.execute(f"DROP TABLE IF EXISTS {table}")
        for statement in _SCHEMA.split(";"):
            if statement.strip():
                conn.execute(statement)
        conn.execute(
            "INSERT OR REPLACE INTO meta (key, value) VALUES ('schema_version', ?)",
            (SCHEMA_VERSION,),
        )


@contextmanager
def transaction(conn: sqlite3.Connection) -> Iterator[sqlite3.Connection]:
    """One write transaction (taken up front, so concurrent writers queue instead of failing)."""
    if conn.in_transaction:  # nested: part of the caller's transaction
        yield conn
        return
    conn.execute("BEGIN IMMEDIATE")
    try:
        yield conn
    except BaseException:
        conn.execute("ROLLBACK")
        raise
    conn.execute("COMMIT")


def wipe(conn: sqlite3.Connection) -> None:
    """Forget every row and every consumed offset, in one transaction."""
    with transaction(conn):
        for table in _TABLES:
            conn.execute(f"DELETE FROM {table}")


def stored_offsets(conn: sqlite3.Connection) -> dict[tuple[str, int], int]:
    """The next offset to consume per (topic, partition)."""
    rows = conn.execute("SELECT topic, partition, next_offset FROM offsets").fetchall()
    return {(r["topic"], r["partition"]): r["next_offset"] for r in rows}


def _row(row: sqlite3.Row | None, json_columns: tuple[str, ...]) -> dict[str, Any] | None:
    if row is None:
        return None
    out = dict(row)
    for column in json_columns:
        if column in out and out[column] is not None:
            out[column] = json.loads(out[column])
    return out


def _bounded(limit: int, offset: int) -> tuple[int, int]:
    return max(1, min(int(limit), MAX_PAGE)), max(0, int(offset))


def list_models(
    conn: sqlite3.Connection,
    framework: str | None = None,
    base_model_id: str | None = None,
    tag: str | None = None,
    limit: int = 50,
    offset: int = 0,
) -> Page:
    """Registered models, newest first, filtered by framework, parent model and tag.

    The page is chosen on ids and sort keys only (from an index), then its rows are read:
    sorting whole rows, JSON columns and all, costs more than the query itself.
    """
    limit, offset = _bounded(limit, offset)
    where: list[str] = []
    params: list[Any] = []
    if tag is None:
        source, order = "models m", "m.created_at DESC, m.model_id"
    else:  # drive from model_tags, which carries created_at for this very order
        source = "model_tags s JOIN models m USING (model_id)"
        order = "s.created_at DESC, s.model_id"
        where, params = ["s.tag = ?"], [tag]
    for column, value in (("framework", framework), ("base_model_id", base_model_id)):
        if value is not None:
            where.append(f"m.{column} = ?")
            params.append(value)
    clause = f"WHERE {' AND '.join(where)}" if where else ""
    total = conn.execute(f"SELECT count(*) FROM {source} {clause}", params).fetchone()[0]
    page_ids = f"SELECT m.model_id FROM {source} {clause} ORDER BY {order} LIMIT ? OFFSET ?"
    rows = conn.execute(
        f"SELECT * FROM models WHERE model_id IN ({page_ids}) ORDER BY created_at DESC, model_id",
        [*params, limit, offset],
    ).fetchall()
    items = [_with_size(_row(r, MODEL_JSON)) for r in rows]
    return Page(items=items, total=total, limit=limit, offset=offset)


def _with_size(model: dict[str, Any] | None) -> dict[str, Any]:
    assert model is not None
    model["size_bytes"] = sum(int(a.get("size_bytes", 0)) for a in model["artifacts"])
    return model


def get_model(conn: sqlite3.Connection, model_id: str) -> dict[str, Any] | None:
    """One model with its files (path, size, sha256), metrics and metadata; None if unknown."""
    row = conn.execute("SELECT * FROM models WHERE model_id = ?", (model_id,)).fetchone()
    model = _row(row, MODEL_JSON)
    return _with_size(model) if model else None


def lineage(conn: sqlite3.Connection, model_id: str) -> dict[str, Any] | None:
    """A model's ancestors (nearest first) and its direct children; None if the model is unknown.

    The chain follows ``base_model_id`` through registered models; where it leaves the registry
    (a torchvision or hub base, or an ancestor never registered here) the ids recorded in the
    model's own ``lineage`` fill it in, marked ``registered: false``.
    """
    model = get_model(conn, model_id)
    if model is None:
        return None
    rows = conn.execute(
        f"""
        WITH RECURSIVE chain(id, depth) AS (
            SELECT base_model_id, 1 FROM models WHERE model_id = ? AND base_model_id IS NOT NULL
            UNION ALL
            SELECT m.base_model_id, c.depth + 1 FROM models m JOIN chain c ON m.model_id = c.id
            WHERE m.base_model_id IS NOT NULL AND c.depth < {MAX_LINEAGE_DEPTH}
        )
        SELECT c.id AS chain_id, c.depth, m.* FROM chain c LEFT JOIN models m ON m.model_id = c.id
        ORDER BY c.depth
        """,
        (model_id,),
    ).fetchall()
    ancestors: list[dict[str, Any]] = []
    seen = {model_id}
    for r in rows:
        if r["chain_id"] in seen:  # a cycle in bad data: stop rather than loop
            break
        seen.add(r["chain_id"])
        ancestors.append(_summary(r) if r["model_id"] else _unregistered(r["chain_id"]))
    for ancestor_id in model["lineage"]:
        if ancestor_id not in seen:
            seen.add(ancestor_id)
            ancestors.append(_unregistered(ancestor_id))
    children = conn.execute(
        f"SELECT {_SUMMARY} FROM models WHERE base_model_id = ? ORDER BY created_at, model_id",
        (model_id,),
    ).fetchall()
    return {
        "model": _summary(model),
        "ancestors": ancestors,
        "children": [_summary(c) for c in children],
    }


def _summary(row: sqlite3.Row | dict[str, Any]) -> dict[str, Any]:
    out = {
        k: row[k] for k in ("model_id", "name", "framework", "task", "base_model_id", "created_at")
    }
    out["registered"] = True
    return out


def _unregistered(model_id: str) -> dict[str, Any]:
    return {"model_id": model_id, "registered": False}


def list_jobs(
    conn: sqlite3.Connection, status: str | None = None, limit: int = 50, offset: int = 0
) -> Page:
    """Jobs, most recently updated first, optionally of one status."""
    limit, offset = _bounded(limit, offset)
    clause, params = ("WHERE status = ?", [status]) if status else ("", [])
    total = conn.execute(f"SELECT count(*) FROM jobs {clause}", params).fetchone()[0]
    rows = conn.execute(
        f"SELECT * FROM jobs {clause} ORDER BY updated_at DESC, job_id LIMIT ? OFFSET ?",
        [*params, limit, offset],
    ).fetchall()
    return Page(items=[_job(r) for r in rows], total=total, limit=limit, offset=offset)


def _job(row: sqlite3.Row) -> dict[str, Any]:
    job = _row(row, JOB_JSON)
    assert job is not None
    job.pop("status_at", None)
    return job


def get_job(conn: sqlite3.Connection, job_id: str) -> dict[str, Any] | None:
    """One job: status, last progress, errors and warnings; None if unknown."""
    row = conn.execute("SELECT * FROM jobs WHERE job_id = ?", (job_id,)).fetchone()
    return _job(row) if row else None


class RegistryStore:
    """The read model at one path, with a connection per thread for readers."""

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

    def list_models(self, **filters: Any) -> Page:
        """See :func:`list_models`."""
        return list_models(self.conn(), **filters)

    def get_model(self, model_id: str) -> dict[str, Any] | None:
        """See :func:`get_model`."""
        return get_model(self.conn(), model_id)

    def lineage(self, model_id: str) -> dict[str, Any] | None:
        """See :func:`lineage`."""
        return lineage(self.conn(), model_id)

    def list_jobs(self, **filters: Any) -> Page:
        """See :func:`list_jobs`."""
        return list_jobs(self.conn(), **filters)

    def get_job(self, job_id: str) -> dict[str, Any] | None:
        """See :func:`get_job`."""
        return get_job(self.conn(), job_id)

    def offsets(self) -> dict[tuple[str, int], int]:
        """See :func:`stored_offsets`."""
        return stored_offsets(self.conn())
