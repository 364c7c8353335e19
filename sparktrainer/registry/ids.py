"""Whole ids from the prefixes people type: ``780bdd90`` for ``780bdd90-80c1-...``.

Every place that takes a job, sweep or model id takes a unique prefix of one (what `jobs
list` prints is long; people copy the start). An id the read model holds exactly is itself;
a prefix that more than one id starts with is refused with a few of them.
"""

from __future__ import annotations

import sqlite3
from typing import Literal

Kind = Literal["job", "sweep", "model"]
_COLUMNS: dict[Kind, tuple[str, str]] = {
    "job": ("jobs", "job_id"),
    "sweep": ("sweeps", "sweep_id"),
    "model": ("models", "model_id"),
}
_SHOWN = 5  # how many of the ids an ambiguous prefix matches the error names


class AmbiguousId(LookupError):
    """A prefix that more than one id starts with (the message names some of them)."""

    def __init__(self, kind: Kind, prefix: str, matches: list[str]) -> None:
        shown = ", ".join(matches[:_SHOWN]) + (", ..." if len(matches) > _SHOWN else "")
        super().__init__(
            f"'{prefix[:128]}' is the start of more than one {kind} id ({shown}): give more of it"
        )
        self.matches = matches


def whole_id(conn: sqlite3.Connection, kind: Kind, text: str) -> str:
    """The id ``text`` is, or the one it starts; ``text`` itself when no id starts with it."""
    table, column = _COLUMNS[kind]
    if not text or conn.execute(
        f"SELECT 1 FROM {table} WHERE {column} = ?", (text,)
    ).fetchone():  # fmt: skip
        return text
    # A range, not LIKE: the primary key's index answers it, and '%' or '_' mean themselves.
    rows = conn.execute(
        f"SELECT {column} FROM {table} WHERE {column} > ? AND {column} < ? "
        f"ORDER BY {column} LIMIT ?",
        (text, text + "\U0010ffff", _SHOWN + 1),
    ).fetchall()
    if len(rows) > 1:
        raise AmbiguousId(kind, text, [r[0] for r in rows])
    return rows[0][0] if rows else text
