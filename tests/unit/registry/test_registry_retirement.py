"""Archive, delete and purge in the read model; references resolved; changes refused."""

from __future__ import annotations

import sqlite3

import pytest
from names_kit import Log, alias, at, named  # type: ignore[import-not-found]

from sparktrainer.contracts.model_events import ModelArchived, ModelDeleted, ModelPurged
from sparktrainer.contracts.refs import ModelRef, UnknownModelError
from sparktrainer.registry import changes
from sparktrainer.registry.models import get_model, list_models
from sparktrainer.registry.resolve import resolve_ref


def retired_log() -> Log:
    log = Log()
    for i, model_id in enumerate(("d1", "d2", "d3")):
        log.add(named(model_id, "digits", t=i))
    log.add(named("other", None, t=4))
    log.add(alias("digits", "champion", 2, t=5))
    log.add(ModelArchived(model_id="d1", by="alice", at=at(6), reason="old"), partition=1)
    log.add(ModelDeleted(model_id="d3", by="bob", at=at(7), reason="leaked data"), partition=2)
    log.add(ModelDeleted(model_id="d3", by="mallory", at=at(8)), partition=2)  # second: ignored
    log.add(ModelArchived(model_id="d3", by="carol", at=at(9)), partition=2)  # after: no effect
    return log


def ids(conn: sqlite3.Connection, **filters: object) -> list[str]:
    return sorted(m["model_id"] for m in list_models(conn, **filters).items)  # type: ignore[arg-type]


@pytest.mark.parametrize("seed", range(8))
def test_archived_and_deleted_leave_the_default_list_in_any_fold_order(seed: int) -> None:
    conn = retired_log().folded(seed)
    assert ids(conn) == ["d2", "other"]
    assert ids(conn, status="archived") == ["d1"]
    assert ids(conn, status="deleted") == ["d3"]
    assert ids(conn, status="all") == ["d1", "d2", "d3", "other"]
    tomb = get_model(conn, "d3")
    assert tomb is not None and tomb["status"] == "deleted"
    assert (
        tomb["retired"]["deleted_by"] == "bob" and tomb["retired"]["delete_reason"] == "leaked data"
    )
    assert "archived_by" not in tomb["retired"]


def test_purge_records_when_the_files_went() -> None:
    log = retired_log()
    log.add(ModelPurged(model_id="d3", files_removed=4, at=at(100)), partition=2)
    tomb = get_model(log.folded(), "d3")
    assert tomb is not None and tomb["retired"]["files_removed"] == 4
    assert tomb["retired"]["files_removed_at"].startswith("2026-01-01T00:01:40")


def test_references_resolve_to_concrete_ids() -> None:
    conn = retired_log().folded()

    def resolve(text: str) -> tuple[str, str | None, int | None, str | None]:
        found = resolve_ref(conn, ModelRef.parse(text))
        return found.model_id, found.name, found.version, found.status

    assert resolve("digits:1") == ("d1", "digits", 1, "archived")
    assert resolve("digits@champion") == ("d2", "digits", 2, "live")
    assert resolve("digits@latest") == ("d2", "digits", 2, "live")  # d3 is deleted
    assert resolve("d3") == ("d3", "digits", 3, "deleted")
    assert resolve("never-registered") == ("never-registered", None, None, None)
    deleted = resolve_ref(conn, ModelRef.parse("digits:3"))
    assert deleted.deleted_message() == (
        "Model 'd3' (digits version 3) was deleted by bob at 2026-01-01T00:00:07.000000+00:00: "
        "leaked data"
    )


@pytest.mark.parametrize(
    ("text", "says"),
    [
        ("nothing:1", "No registered model named 'nothing'"),
        ("digits:9", "Model 'digits' has no version 9 (its versions: 1-3)"),
        ("digits@prod", "Model 'digits' has no alias 'prod' (its aliases: champion)"),
    ],
)
def test_unknown_references_say_what_is_missing(text: str, says: str) -> None:
    with pytest.raises(UnknownModelError, match=says.replace("(", r"\(").replace(")", r"\)")):
        resolve_ref(retired_log().folded(), ModelRef.parse(text))


def test_a_dangling_alias_says_where_it_points() -> None:
    log = retired_log()
    log.add(alias("digits", "future", 7, t=20))  # hand-made: the API would refuse it
    with pytest.raises(UnknownModelError, match="points at version 7, which is not registered"):
        resolve_ref(log.folded(), ModelRef.parse("digits@future"))


@pytest.mark.parametrize(
    ("plan", "args", "status", "says"),
    [
        (changes.deleted, ("digits@champion",), 409, "digits@champion points at"),
        (changes.deleted, ("d3",), 409, "was deleted by bob"),
        (changes.archived, ("digits:3",), 409, "was deleted by bob"),
        (changes.alias_set, ("digits", "champion", 3), 409, "point the alias at another one"),
        (changes.alias_set, ("digits", "latest", 2), 422, "reserved"),
        (changes.alias_set, ("digits", "champion", 9), 404, "no version 9"),
        (changes.alias_removed, ("digits", "nope"), 404, "is not set"),
        (changes.deleted, ("bad ref!",), 422, "NAME@ALIAS"),
        (changes.deleted, ("unknown-id",), 404, "No model 'unknown-id'"),
    ],
)
def test_changes_the_read_model_refuses(plan, args, status: int, says: str) -> None:  # type: ignore[no-untyped-def]
    with pytest.raises(changes.ChangeRefused, match=says) as refused:
        plan(retired_log().folded(), *args, changes.Asker("default", "tester"), None)
    assert refused.value.status == status


def test_changes_the_read_model_allows() -> None:
    conn = retired_log().folded()
    tester = changes.Asker("default", "tester")
    moved = changes.alias_set(conn, "digits", "champion", 1, tester, "rollback")
    assert (moved.name, moved.alias, moved.version) == ("digits", "champion", 1)
    assert (moved.tenant, moved.actor, moved.by) == ("default", "tester", "default (tester)")
    assert changes.deleted(conn, "digits:1", tester, None).model_id == "d1"
    assert changes.archived(conn, "other", changes.Asker("default"), None).by == "default"
