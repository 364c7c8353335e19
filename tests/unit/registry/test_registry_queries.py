"""Read-model queries: filters, paging, lineage, schema migration."""

from __future__ import annotations

import sqlite3
from pathlib import Path

import pytest
from test_registry_fold import at, registered  # type: ignore[import-not-found]

from sparktrainer.registry import db, store
from sparktrainer.registry.fold import apply
from sparktrainer.registry.models import get_model, lineage, list_models
from sparktrainer.registry.rows import MAX_PAGE, Page

TOPIC = "sparktrainer.models.registered"


@pytest.fixture
def conn() -> sqlite3.Connection:
    conn = store.connect(":memory:")
    models = [
        registered("root", tags=["vision"], created_at=at(1)),
        registered("child", base="root", lineage=["root"], tags=["vision", "ft"], created_at=at(2)),
        registered("grand", base="child", lineage=["child", "root"], created_at=at(3)),
        registered("sib", base="root", lineage=["root"], created_at=at(4)),
        registered(
            "hub-ft", base="bert-base-uncased", lineage=["bert-base-uncased"], created_at=at(5)
        ),
    ]
    for offset, model in enumerate(models):
        apply(conn, TOPIC, 0, offset, model)
    return conn


def ids(page: Page) -> list[str]:
    return [m["model_id"] for m in page.items]


def test_filters_and_paging(conn: sqlite3.Connection) -> None:
    assert ids(list_models(conn)) == ["hub-ft", "sib", "grand", "child", "root"]
    assert ids(list_models(conn, tag="vision")) == ["child", "root"]
    assert ids(list_models(conn, base_model_id="root")) == ["sib", "child"]
    assert list_models(conn, framework="huggingface").total == 0
    page = list_models(conn, limit=2, offset=2)
    assert (ids(page), page.total) == (["grand", "child"], 5)
    assert list_models(conn, limit=10**9).limit == MAX_PAGE


def test_model_detail_has_files_and_size(conn: sqlite3.Connection) -> None:
    model = get_model(conn, "child")
    assert model is not None
    assert model["artifacts"] == [{"path": "model.pth", "size_bytes": 10, "sha256": "ab" * 32}]
    assert model["size_bytes"] == 10 and model["lineage"] == ["root"]
    assert get_model(conn, "nope") is None


def test_lineage_chain_and_children(conn: sqlite3.Connection) -> None:
    tree = lineage(conn, "grand")
    assert tree is not None
    assert [a["model_id"] for a in tree["ancestors"]] == ["child", "root"]
    assert all(a["registered"] for a in tree["ancestors"])
    root = lineage(conn, "root")
    assert root is not None and root["ancestors"] == []
    assert [c["model_id"] for c in root["children"]] == ["child", "sib"]
    hub = lineage(conn, "hub-ft")
    assert hub is not None
    assert hub["ancestors"] == [{"model_id": "bert-base-uncased", "registered": False}]
    assert lineage(conn, "nope") is None


def test_lineage_survives_a_cycle(conn: sqlite3.Connection) -> None:
    apply(conn, TOPIC, 0, 10, registered("a", base="b"))
    apply(conn, TOPIC, 0, 11, registered("b", base="a"))
    tree = lineage(conn, "a")
    assert tree is not None and [x["model_id"] for x in tree["ancestors"]] == ["b"]


def test_old_schema_is_dropped_and_rebuilt(tmp_path: Path) -> None:
    path = tmp_path / "r.sqlite3"
    conn = store.connect(path)
    apply(conn, TOPIC, 0, 0, registered("m1"))
    conn.execute("UPDATE meta SET value = 'old' WHERE key = 'schema_version'")
    conn.close()
    conn = store.connect(path)
    assert list_models(conn).total == 0 and db.stored_offsets(conn) == {}
    assert conn.execute("PRAGMA journal_mode").fetchone()[0] == "wal"


def test_store_reads_from_any_thread(tmp_path: Path) -> None:
    import threading

    reg = store.RegistryStore(tmp_path / "r.sqlite3")
    apply(reg.conn(), TOPIC, 0, 0, registered("m1"))
    seen: list[int] = []
    t = threading.Thread(target=lambda: seen.append(reg.read(list_models).total))
    t.start()
    t.join()
    assert seen == [1]


def test_a_models_headline_metric_is_the_first_it_has_of_the_list() -> None:
    """The metric `models list` prints and the dashboard's models table shows, from one rule."""
    conn = store.connect(":memory:")
    metrics = {"a": {"loss": 0.5, "val_loss": 0.7, "accuracy": 0.8}, "b": {"loss": 0.25},
               "c": {"perplexity": 3.0}}  # fmt: skip
    for offset, (model_id, m) in enumerate(metrics.items()):
        apply(conn, TOPIC, 0, offset, registered(model_id, metrics=m, created_at=at(offset)))
    shown = {m["model_id"]: m["headline_metric"] for m in list_models(conn).items}
    assert shown["a"] == {"name": "accuracy", "value": 0.8}  # before val_loss and loss
    assert shown["b"] == {"name": "loss", "value": 0.25}
    assert shown["c"] is None
    assert get_model(conn, "a")["headline_metric"] == shown["a"]  # type: ignore[index]
