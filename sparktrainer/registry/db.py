"""The read model's SQLite file: connections, transactions, the schema of its concerns, offsets.

The database is disposable: everything in it is folded from the Kafka log, and the consumed
offsets live in the same database (and the same transactions), so it can always be rebuilt
from the beginning of the log. A schema change (any concern's DDL or version) simply wipes
it, and the projector replays from the start.
"""

from __future__ import annotations

import hashlib
import sqlite3
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from pathlib import Path

from sparktrainer.registry.concern import Concern

CORE_VERSION = "6"  # the meta and offsets tables, and how the fingerprint is formed
_CORE_DDL = """
CREATE TABLE IF NOT EXISTS offsets (
    topic TEXT NOT NULL,
    partition INTEGER NOT NULL,
    next_offset INTEGER NOT NULL,
    PRIMARY KEY (topic, partition)
)
"""


def schema_fingerprint(concerns: Sequence[Concern]) -> str:
    """Names and versions of the concerns, plus a digest of all DDL: any change rebuilds."""
    ddl = "\n".join([_CORE_DDL, *(c.ddl for c in concerns)])
    names = ",".join(f"{c.name}.{c.version}" for c in concerns)
    return f"{CORE_VERSION};{names};{hashlib.sha256(ddl.encode()).hexdigest()[:16]}"


def open_database(path: Path | str, concerns: Sequence[Concern]) -> sqlite3.Connection:
    """Open (and create or migrate) the read model; transactions are explicit (autocommit)."""
    if str(path) != ":memory:":
        Path(path).parent.mkdir(parents=True, exist_ok=True)
    # Every concern's statements stay prepared (the cache is per connection; 128 by default).
    conn = sqlite3.connect(str(path), isolation_level=None, check_same_thread=False, timeout=30.0,
                           cached_statements=512)  # fmt: skip
    conn.row_factory = sqlite3.Row
    conn.execute("PRAGMA journal_mode=WAL")
    # WAL + NORMAL: a commit survives a process crash; an OS crash may lose the last
    # transactions, and with them their offsets, so they are simply consumed again.
    conn.execute("PRAGMA synchronous=NORMAL")
    conn.execute("PRAGMA busy_timeout=30000")
    _migrate(conn, concerns)
    return conn


def _migrate(conn: sqlite3.Connection, concerns: Sequence[Concern]) -> None:
    fingerprint = schema_fingerprint(concerns)
    with transaction(conn):
        conn.execute("CREATE TABLE IF NOT EXISTS meta (key TEXT PRIMARY KEY, value TEXT NOT NULL)")
        row = conn.execute("SELECT value FROM meta WHERE key = 'schema_version'").fetchone()
        if row is not None and row[0] == fingerprint:
            return
        if row is not None:  # another schema: drop all of it, the log rebuilds it
            for table in _tables(conn):
                conn.execute(f'DROP TABLE IF EXISTS "{table}"')
        for statement in [_CORE_DDL, *(s for c in concerns for s in c.statements())]:
            conn.execute(statement)
        conn.execute(
            "INSERT OR REPLACE INTO meta (key, value) VALUES ('schema_version', ?)",
            (fingerprint,),
        )


def _tables(conn: sqlite3.Connection) -> list[str]:
    """Every table of ours but ``meta`` (whichever concerns created them)."""
    rows = conn.execute(
        "SELECT name FROM sqlite_master WHERE type = 'table' AND name NOT LIKE 'sqlite_%'"
    ).fetchall()
    return [r[0] for r in rows if r[0] != "meta"]


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
        for table in _tables(conn):
            conn.execute(f'DELETE FROM "{table}"')


def stored_offsets(conn: sqlite3.Connection) -> dict[tuple[str, int], int]:
    """The next offset to consume per (topic, partition)."""
    rows = conn.execute("SELECT topic, partition, next_offset FROM offsets").fetchall()
    return {(r["topic"], r["partition"]): r["next_offset"] for r in rows}


def next_offset(conn: sqlite3.Connection, topic: str, partition: int) -> int | None:
    """The next offset to consume of one partition; None before its first record."""
    row = conn.execute(
        "SELECT next_offset FROM offsets WHERE topic = ? AND partition = ?", (topic, partition)
    ).fetchone()
    return None if row is None else int(row[0])


def store_offset(conn: sqlite3.Connection, topic: str, partition: int, offset: int) -> None:
    """Record that everything of the partition below ``offset`` has been folded."""
    conn.execute(
        "INSERT INTO offsets (topic, partition, next_offset) VALUES (?, ?, ?) "
        "ON CONFLICT (topic, partition) DO UPDATE SET next_offset = excluded.next_offset",
        (topic, partition, offset),
    )
