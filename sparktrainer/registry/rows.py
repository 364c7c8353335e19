"""What the concerns' folds and queries share: pages, JSON columns, timestamps as text."""

from __future__ import annotations

import json
import sqlite3
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

MAX_PAGE = 1000

Row = dict[str, Any]


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


def bounded(limit: int, offset: int) -> tuple[int, int]:
    """A page size within 1..MAX_PAGE and an offset of at least 0."""
    return max(1, min(int(limit), MAX_PAGE)), max(0, int(offset))


def decoded(row: sqlite3.Row, json_columns: tuple[str, ...]) -> Row:
    """A row as a dict, with its JSON columns parsed."""
    out = dict(row)
    for column in json_columns:
        if column in out and out[column] is not None:
            out[column] = json.loads(out[column])
    return out


def iso(at: datetime) -> str:
    """UTC, microsecond precision: the text form sorts like the time."""
    if at.tzinfo is None:
        at = at.replace(tzinfo=UTC)
    return at.astimezone(UTC).isoformat(timespec="microseconds")
