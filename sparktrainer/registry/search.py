"""Searching the models: filters, metric ranges and sort orders, as one parameterised query.

``ModelQuery`` is what the API and the CLI fill in; :func:`model_page` picks the page on
ids and sort keys only (indexes do the work) and reads its rows. Every
value reaches SQLite as a parameter; metric names (which form a JSON path) follow a grammar.
"""

from __future__ import annotations

import json
import math
import re
import sqlite3
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any, Literal

from sparktrainer.registry.rows import bounded, iso

StatusFilter = Literal["live", "archived", "deleted", "all"]
STATUS_FILTERS: tuple[str, ...] = ("live", "archived", "deleted", "all")
MAX_METRIC_BOUNDS = 8
FIXED_SORTS = ("created_at", "version", "name")
_METRIC_RE = re.compile(r"[A-Za-z0-9_.-]{1,64}")
_BOUND_RE = re.compile(r"\s*([A-Za-z0-9_.-]{1,64})\s*(>=|<=|>|<|=)\s*([-+0-9.eE]{1,32})\s*")
_OPS = {">=": ">=", "<=": "<=", ">": ">", "<": "<", "=": "="}


class SearchError(ValueError):
    """A search parameter that cannot be used; the message says how to write it."""


@dataclass(frozen=True)
class MetricBound:
    """``metric OP value``: e.g. ``val_accuracy >= 0.9``."""

    metric: str
    op: str
    value: float

    @classmethod
    def parse(cls, text: str) -> MetricBound:
        """Read ``name>=0.9`` (ops: >=, <=, >, <, =)."""
        m = _BOUND_RE.fullmatch(text)
        if m is None:
            raise SearchError(
                f"metric filter '{text[:80]}' must look like 'val_accuracy>=0.9' "
                "(a metric name, one of >= <= > < =, a number)"
            )
        try:
            value = float(m.group(3))
            if not math.isfinite(value):
                raise ValueError(value)
        except ValueError:
            msg = f"metric filter '{text[:80]}': '{m.group(3)}' is not a finite number"
            raise SearchError(msg) from None
        return cls(m.group(1), _OPS[m.group(2)], value)


def metric_path(name: str) -> str:
    """The JSON path of a metric inside the ``metrics`` column."""
    if not _METRIC_RE.fullmatch(name):
        raise SearchError(f"'{name[:80]}' is not a metric name (letters, digits, '_', '.', '-')")
    return f'$."{name}"'


def _when(text: str | None, what: str) -> str | None:
    if text is None:
        return None
    try:
        return iso(datetime.fromisoformat(text.replace("Z", "+00:00")))
    except ValueError:
        raise SearchError(f"{what} '{text[:60]}' is not an ISO date or time") from None


@dataclass(frozen=True)
class ModelQuery:
    """Which models, in which order. ``sort``: created_at, version, name, or a metric name."""

    framework: str | None = None
    base_model_id: str | None = None
    tag: str | None = None
    name: str | None = None
    alias: str | None = None
    task: str | None = None
    status: StatusFilter = "live"
    created_after: str | None = None
    created_before: str | None = None
    metrics: tuple[MetricBound, ...] = field(default_factory=tuple)
    sort: str = "created_at"
    descending: bool = True
    limit: int = 50
    offset: int = 0

    def where(self) -> tuple[str, list[str], list[Any]]:
        """The rows to search (``models m``, joined to a tag's or a name's rows) and the terms.

        A tag or a name drives the query from its own index (a join, at most one row per
        model); the status sits in every models index, so each filter is one index range.
        """
        if len(self.metrics) > MAX_METRIC_BOUNDS:
            raise SearchError(f"at most {MAX_METRIC_BOUNDS} metric filters")
        if self.status not in STATUS_FILTERS:
            raise SearchError(f"status must be one of {', '.join(STATUS_FILTERS)}")
        tables: list[str] = []
        terms: list[str] = []
        params: list[Any] = []
        for table, column, value in (("model_tags", "tag", self.tag),
                                     ("model_versions", "name", self.name)):  # fmt: skip
            if value is not None:
                alias = table[6]  # t, v
                tables.append(f"{table} {alias}")
                terms += [f"{alias}.{column} = ?", f"{alias}.model_id = m.model_id"]
                params.append(value)
        # CROSS JOIN keeps this order: the tag's (or name's) rows first, then their models.
        source = " CROSS JOIN ".join([*tables, "models m"])
        if self.status != "all":
            terms.append("m.status = ?")
            params.append(self.status)
        for column in ("framework", "base_model_id", "task"):
            if (value := getattr(self, column)) is not None:
                terms.append(f"m.{column} = ?")
                params.append(value)
        if self.alias is not None:
            terms.append(f"m.model_id IN ({_ALIASED if self.alias != 'latest' else _LATEST})")
            params += [self.alias] if self.alias != "latest" else []
        for op, text, what in ((">=", self.created_after, "created_after"),
                               ("<", self.created_before, "created_before")):  # fmt: skip
            if (at := _when(text, what)) is not None:
                terms.append(f"m.created_at {op} ?")
                params.append(at)
        for b in self.metrics:
            terms.append(f"json_extract(m.metrics, ?) {b.op} ?")
            params += [metric_path(b.metric), b.value]
        return source, terms, params

    def order(self, lead: str = "m") -> tuple[str, list[Any]]:
        """ORDER BY (models without the sort metric last) and its parameters.

        ``lead``: the table whose ``created_at`` and ``model_id`` break ties (``t``, a tag's
        rows, carry the model's own, in the index order of the tag).
        """
        direction = "DESC" if self.descending else "ASC"
        tail = f"{lead}.created_at {direction}, {lead}.model_id"
        if self.sort == "created_at":
            return tail, []
        if self.sort in ("version", "name"):
            column = "m.version" if self.sort == "version" else "m.registered_name"
            return f"{column} IS NULL, {column} {direction}, {tail}", []
        path = metric_path(self.sort)
        metric = "json_extract(m.metrics, ?)"
        return f"{metric} IS NULL, {metric} {direction}, {tail}", [path, path]


_ALIASED = (
    "SELECT v.model_id FROM model_aliases a JOIN model_versions v "
    "ON v.name = a.name AND v.version = a.version WHERE a.alias = ?"
)
_LATEST = (
    "SELECT v.model_id FROM model_versions v WHERE v.version = ("
    "SELECT max(w.version) FROM model_versions w LEFT JOIN model_retirement r "
    "ON r.model_id = w.model_id WHERE w.name = v.name AND r.status IS NOT 'deleted')"
)


def model_page(conn: sqlite3.Connection, query: ModelQuery) -> tuple[list[sqlite3.Row], int]:
    """One page of the query's models (whole rows, in order) and how many match in all.

    The page is chosen on ids and sort keys only (from an index), then its rows are read:
    sorting whole rows, JSON columns and all, costs more than the query itself.
    """
    limit, offset = bounded(query.limit, query.offset)
    source, terms, params = query.where()
    clause = f"WHERE {' AND '.join(terms)}" if terms else ""
    inner, inner_params = query.order("t" if query.tag is not None else "m")
    outer, outer_params = query.order()
    total = conn.execute(f"SELECT count(*) FROM {source} {clause}", params).fetchone()[0]
    rows = conn.execute(
        f"SELECT m.* FROM models m WHERE m.model_id IN (SELECT m.model_id FROM {source} "
        f"{clause} ORDER BY {inner} LIMIT ? OFFSET ?) ORDER BY {outer}",
        [*params, *inner_params, limit, offset, *outer_params],
    ).fetchall()
    _sort_known(conn, query.sort, rows)
    return rows, int(total)


def _sort_known(conn: sqlite3.Connection, sort: str, rows: list[sqlite3.Row]) -> None:
    """Refuse a sort by a metric no model has (a typo would sort nothing, silently).

    Only looked up when no row of the page has it: the first page's models usually do.
    """
    if sort in ("created_at", "version", "name") or not rows:
        return
    path = metric_path(sort)
    if any(json.loads(r["metrics"] or "{}").get(sort) is not None for r in rows):
        return
    has = "SELECT 1 FROM models WHERE json_extract(metrics, ?) IS NOT NULL LIMIT 1"
    if conn.execute(has, (path,)).fetchone():
        return
    newest = conn.execute("SELECT metrics FROM models ORDER BY created_at DESC LIMIT 1").fetchone()
    names = sorted(json.loads(newest["metrics"] or "{}"))[:10] if newest else []
    raise SearchError(
        f"no model has the metric '{sort[:80]}' to sort by: sort by created_at, version, name "
        f"or a metric ({', '.join(names) or 'none reported yet'})"
    )
