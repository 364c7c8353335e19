"""The models concern: registered models, their tags, and the queries on them (lineage too)."""

from __future__ import annotations

import json
import sqlite3
from typing import Any

from sparktrainer.contracts import topics as t
from sparktrainer.contracts.events import ModelRegistered
from sparktrainer.contracts.ownership import may_register
from sparktrainer.registry import owners
from sparktrainer.registry.concern import Concern
from sparktrainer.registry.names import names_of
from sparktrainer.registry.retirement import retirements_of
from sparktrainer.registry.rows import Page, Row, bounded, decoded, iso
from sparktrainer.registry.search import ModelQuery, model_page

MAX_LINEAGE_DEPTH = 64
DDL = """
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
    data TEXT,  -- the DataIdentity the model was trained on (NULL: not recorded)
    tags TEXT NOT NULL,
    license TEXT,
    domain TEXT,
    created_at TEXT NOT NULL,
    description TEXT,
    storage_prefix TEXT NOT NULL,
    registered_name TEXT,  -- names.py: the name this model is a version of (first by name)
    version INTEGER,
    status TEXT NOT NULL DEFAULT 'live',  -- retirement.py: live, archived or deleted
    tenant TEXT NOT NULL  -- owners.py: whose model it is (its first registration's tenant)
);
CREATE INDEX IF NOT EXISTS models_by_created ON models (created_at DESC, model_id);
CREATE INDEX IF NOT EXISTS models_by_status ON models (status, created_at DESC, model_id);
CREATE INDEX IF NOT EXISTS models_by_framework ON models (framework, status, created_at DESC);
CREATE INDEX IF NOT EXISTS models_by_base ON models (base_model_id, status, created_at DESC);
CREATE INDEX IF NOT EXISTS models_status_by_id ON models (model_id, status);  -- tag/name joins
CREATE INDEX IF NOT EXISTS models_by_name ON models (registered_name, version);
CREATE TABLE IF NOT EXISTS model_tags (
    model_id TEXT NOT NULL,
    tag TEXT NOT NULL,
    created_at TEXT NOT NULL,
    PRIMARY KEY (model_id, tag)
) WITHOUT ROWID;
CREATE INDEX IF NOT EXISTS model_tags_by_tag ON model_tags (tag, created_at DESC, model_id);
"""
MODEL_JSON = ("architecture", "artifacts", "metrics", "lineage", "data", "tags")
HEADLINE_METRICS = ("val_accuracy", "accuracy", "val_loss", "loss")  # the first a model has
_SUMMARY = "model_id, name, framework, task, base_model_id, created_at, data"


def _register(conn: sqlite3.Connection, ev: ModelRegistered) -> None:
    """Upsert by model id: a replayed registration rewrites the same row.

    A registration of a model id another tenant owns changes nothing (it is counted).
    """
    owner = owners.model_owner(conn, ev.model_id)
    if owner is not None and not may_register(owner, ev.tenant):
        owners.refuse(conn, ev, "model", ev.model_id, owner)
        return
    data = ev.model_dump(mode="json")
    row = {
        k: data[k]
        for k in (
            "model_id",
            "job_id",
            "name",
            "framework",
            "task",
            "base_model_id",
            "license",
            "domain",
            "description",
            "storage_prefix",
            "tenant",
        )
    }
    for column in MODEL_JSON:
        row[column] = None if data[column] is None else json.dumps(data[column])
    row["created_at"] = iso(ev.created_at)
    columns = ", ".join(row)
    updates = ", ".join(f"{k} = excluded.{k}" for k in row if k != "model_id")
    conn.execute(
        f"INSERT INTO models ({columns}) VALUES ({', '.join(':' + k for k in row)}) "
        f"ON CONFLICT (model_id) DO UPDATE SET {updates}",
        row,
    )
    conn.execute("DELETE FROM model_tags WHERE model_id = ?", (ev.model_id,))
    conn.executemany(
        "INSERT OR IGNORE INTO model_tags (model_id, tag, created_at) VALUES (?, ?, ?)",
        [(ev.model_id, tag, row["created_at"]) for tag in ev.tags],
    )


MODELS = Concern(
    name="models",
    version=4,  # v4: each model's tenant; another tenant's registration of its id is refused
    ddl=DDL,
    topics=(t.MODELS_REGISTERED,),
    folds={ModelRegistered: _register},
)


def list_models(conn: sqlite3.Connection, query: ModelQuery | None = None, **filters: Any) -> Page:
    """Registered models matching a query (default: live ones, newest first).

    ``filters`` are :class:`ModelQuery` fields (``framework=``, ``tag=``, ``limit=`` ...).
    """
    query = query or ModelQuery(**filters)
    rows, total = model_page(conn, query)
    items = _described(conn, [decoded(r, MODEL_JSON) for r in rows])
    limit, offset = bounded(query.limit, query.offset)
    return Page(items=items, total=total, limit=limit, offset=offset)


def _described(conn: sqlite3.Connection, models: list[Row]) -> list[Row]:
    """Size, names (versions and aliases) and retirement of each model, read once per page."""
    named = names_of(conn, [m["model_id"] for m in models if m["registered_name"]])
    retired = retirements_of(conn, [m["model_id"] for m in models if m["status"] != "live"])
    for model in models:
        model["size_bytes"] = sum(int(a.get("size_bytes", 0)) for a in model["artifacts"])
        model.update(named.get(model["model_id"], {"versions": [], "aliases": []}))
        model["retired"] = retired.get(model["model_id"])
        model["headline_metric"] = headline_metric(model["metrics"])
    return models


def headline_metric(metrics: dict[str, Any]) -> Row | None:
    """The one metric a list of models shows: the first of HEADLINE_METRICS the model has."""
    for name in HEADLINE_METRICS:
        if isinstance(metrics.get(name), int | float):
            return {"name": name, "value": metrics[name]}
    return None


def get_model(conn: sqlite3.Connection, model_id: str) -> Row | None:
    """One model with its files (path, size, sha256), metrics, metadata, names, retirement."""
    row = conn.execute("SELECT * FROM models WHERE model_id = ?", (model_id,)).fetchone()
    return _described(conn, [decoded(row, MODEL_JSON)])[0] if row else None


def lineage(conn: sqlite3.Connection, model_id: str) -> Row | None:
    """A model's ancestors (nearest first) and its direct children; None if the model is unknown.

    Each registered model in the chain comes with the data it was trained on (``data``), so a
    fine-tune's lineage shows its parents' data too.

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
    data = row["data"] if "data" in row.keys() else None
    out["data"] = json.loads(data) if isinstance(data, str) else data
    out["registered"] = True
    return out


def _unregistered(model_id: str) -> dict[str, Any]:
    return {"model_id": model_id, "registered": False}
