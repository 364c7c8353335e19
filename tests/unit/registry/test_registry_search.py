"""Searching models: every filter, metric ranges, sort orders, and parameters refused."""

from __future__ import annotations

import sqlite3

import pytest
from names_kit import Log, alias, named  # type: ignore[import-not-found]

from sparktrainer.contracts.model_events import ModelArchived
from sparktrainer.registry.models import list_models
from sparktrainer.registry.search import MetricBound, ModelQuery, SearchError


@pytest.fixture(scope="module")
def conn() -> sqlite3.Connection:
    log = Log()
    rows = [
        ("a", "digits", 1, {"val_accuracy": 0.80, "loss": 0.9}, ["vision"], "classification"),
        ("b", "digits", 2, {"val_accuracy": 0.95, "loss": 0.3}, ["vision", "ft"], "classification"),
        ("c", "digits", 3, {"val_accuracy": 0.90}, [], "classification"),
        ("d", "texts", 4, {"loss": 2.0}, ["nlp"], "generation"),
        ("e", None, 5, {}, [], "classification"),
    ]  # fmt: skip
    for model_id, name, t, metrics, tags, task in rows:
        log.add(named(model_id, name, t=t, metrics=metrics, tags=tags, task=task))
    log.add(named("f", "digits", t=6, metrics={"val_accuracy": 0.99}))
    log.add(alias("digits", "champion", 2, t=10))
    log.add(ModelArchived(model_id="f"), partition=1)
    return log.folded()


def ids(conn: sqlite3.Connection, **q: object) -> list[str]:
    return [m["model_id"] for m in list_models(conn, ModelQuery(**q)).items]  # type: ignore[arg-type]


def test_filters(conn: sqlite3.Connection) -> None:
    assert ids(conn) == ["e", "d", "c", "b", "a"]  # newest first, archived f left out
    assert ids(conn, name="digits") == ["c", "b", "a"]
    assert ids(conn, name="digits", status="all") == ["f", "c", "b", "a"]
    assert ids(conn, alias="champion") == ["b"]
    assert ids(conn, alias="latest") == ["d"]  # f is digits' latest, but archived
    assert ids(conn, alias="latest", status="all") == ["f", "d"]
    assert ids(conn, tag="vision") == ["b", "a"]
    assert ids(conn, task="generation") == ["d"]
    assert ids(conn, framework="huggingface") == []
    assert ids(conn, created_after="2026-01-01T00:00:03Z") == ["e", "d", "c"]
    assert ids(
        conn, created_after="2026-01-01T00:00:02Z", created_before="2026-01-01T00:00:04Z"
    ) == [
        "c",
        "b",
    ]


def test_metric_ranges(conn: sqlite3.Connection) -> None:
    bounds = (MetricBound.parse("val_accuracy>=0.85"), MetricBound.parse("val_accuracy < 0.99"))
    assert ids(conn, metrics=bounds) == ["c", "b"]
    assert ids(conn, metrics=(MetricBound.parse("loss<=0.3"),)) == ["b"]
    assert ids(conn, metrics=(MetricBound.parse("loss=2"),)) == ["d"]


def test_sorted_by_a_metric_models_without_it_last(conn: sqlite3.Connection) -> None:
    assert ids(conn, sort="val_accuracy") == ["b", "c", "a", "e", "d"]
    assert ids(conn, sort="val_accuracy", descending=False)[:3] == ["a", "c", "b"]
    assert ids(conn, sort="version", name="digits", descending=False) == ["a", "b", "c"]


def test_page_and_total(conn: sqlite3.Connection) -> None:
    page = list_models(conn, ModelQuery(sort="val_accuracy", limit=2, offset=1))
    assert [m["model_id"] for m in page.items] == ["c", "a"] and page.total == 5


@pytest.mark.parametrize(
    "bad",
    [
        "accuracy",
        "accuracy>=x",
        "acc'uracy>=1",
        'x") OR 1=1 --<1',
        "accuracy>=1e999999",
    ],
)
def test_metric_filters_that_cannot_be_used(bad: str) -> None:
    with pytest.raises(SearchError):
        MetricBound.parse(bad)


@pytest.mark.parametrize(
    "query",
    [
        ModelQuery(sort='x") --'),
        ModelQuery(created_after="yesterday"),
        ModelQuery(status="gone"),  # type: ignore[arg-type]
        ModelQuery(metrics=tuple(MetricBound("a", ">", 1.0) for _ in range(9))),
    ],
)
def test_queries_that_cannot_be_used(conn: sqlite3.Connection, query: ModelQuery) -> None:
    with pytest.raises(SearchError):
        list_models(conn, query)
