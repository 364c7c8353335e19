"""Who owns a name and a model in the read model: only the owner's records count, in any order.

Team ``a`` registers ``digits`` first; team ``b`` then registers a model under that name, and
records forged in ``b``'s name (an alias move, an archive, a delete, a purge) land on
models.changes, some before the registrations they touch are folded. Folded in every
interleaving, ``digits@latest``/``@prod`` stay ``a``'s models and every foreign record is
counted once and changes nothing.
"""

from __future__ import annotations

import sqlite3

import pytest
from names_kit import Log, alias, at, named, snapshot  # type: ignore[import-not-found]

from sparktrainer.contracts.model_events import (
    ModelAliasRemoved,
    ModelArchived,
    ModelDeleted,
    ModelPurged,
)
from sparktrainer.contracts.refs import ModelRef
from sparktrainer.registry import changes, owners
from sparktrainer.registry.fold import apply
from sparktrainer.registry.models import get_model, list_models
from sparktrainer.registry.names import alias_target, get_name, latest_version, list_names
from sparktrainer.registry.resolve import resolve_ref


def contested() -> Log:
    """a's name and models, b's attempts on them (changes on partitions of their own)."""
    log = Log()
    log.add(alias("digits", "prod", 1, t=0, tenant="a"), partition=1)
    log.add(named("a1", "digits", t=1, tenant="a"))
    log.add(named("b1", "digits", t=2, tenant="b"))  # b's model under a's name
    log.add(named("a2", "digits", t=3, tenant="a"))
    log.add(named("a1", "mine", t=4, tenant="b"))  # a's model id, registered again by b
    for change in (
        alias("digits", "prod", 2, t=5, tenant="b"),
        ModelAliasRemoved(name="digits", alias="prod", tenant="b", at=at(6)),
    ):
        log.add(change, partition=1)
    for change in (
        ModelArchived(model_id="a2", tenant="b", at=at(7)),
        ModelDeleted(model_id="a1", tenant="b", at=at(8)),
        ModelPurged(model_id="a1", tenant="b", files_removed=3, at=at(9)),
        ModelArchived(model_id="b1", tenant="b", at=at(10), reason="b's own"),
    ):
        log.add(change, partition=2)
    return log


@pytest.mark.parametrize("seed", range(6))
def test_only_the_owners_records_count_in_any_fold_order(seed: int) -> None:
    conn = contested().folded(seed)
    assert owners.name_owner(conn, "digits") == "a"
    assert owners.name_owner(conn, "mine") is None  # b's only try at it was a's model id
    assert [(n["name"], n["tenant"], n["versions"]) for n in list_names(conn).items] == [
        ("digits", "a", 2)
    ]
    assert get_name(conn, "digits")["tenant"] == "a"  # type: ignore[index]
    assert [(v["version"], v["model_id"]) for v in _versions(conn)] == [(1, "a1"), (2, "a2")]
    assert latest_version(conn, "digits") == 2 and alias_target(conn, "digits", "prod") == 1
    assert resolve_ref(conn, ModelRef.parse("digits@latest")).model_id == "a2"
    assert resolve_ref(conn, ModelRef.parse("digits@prod")).model_id == "a1"
    statuses = {m["model_id"]: (m["status"], m["tenant"]) for m in _all(conn)}
    assert statuses == {"a1": ("live", "a"), "a2": ("live", "a"), "b1": ("archived", "b")}
    b1 = get_model(conn, "b1")
    assert b1 is not None and b1["registered_name"] is None and b1["versions"] == []
    kept_out = owners.foreign_records(conn)
    assert kept_out["total"] == 7
    rows = kept_out["items"]
    assert sorted((r["kind"], r["subject"], r["tenant"], r["owner"]) for r in rows) == [
        ("model", "a1", "b", "a"), ("model", "a1", "b", "a"), ("model", "a1", "b", "a"),
        ("model", "a2", "b", "a"), ("name", "digits", "b", "a"), ("name", "digits", "b", "a"),
        ("name", "digits", "b", "a"),
    ]  # fmt: skip


def test_every_fold_order_gives_the_same_read_model() -> None:
    first = snapshot(contested().folded(0), "digits")
    for seed in range(1, 6):
        assert snapshot(contested().folded(seed), "digits") == first


def test_a_change_waits_for_its_registration_then_counts_if_the_owners() -> None:
    log = Log()
    log.add(ModelDeleted(model_id="c1", tenant="c", at=at(1)), partition=1)
    log.add(ModelArchived(model_id="c2", tenant="d", at=at(2)), partition=1)
    conn = log.folded()
    assert conn.execute("SELECT count(*) FROM parked_changes").fetchone()[0] == 2
    conn.execute(  # a parked row a stricter contract would refuse: the registration still folds
        "INSERT INTO parked_changes (kind, subject, ce_type, event) VALUES ('model', 'c1', ?, ?)",
        (ModelArchived.ce_type, '{"model_id": "c1", "at": "2026-01-01T00:00:00"}'),
    )
    for offset, ev in enumerate((named("c1", None, tenant="c"), named("c2", None, tenant="c"))):
        apply(conn, ev.topic, 0, offset, ev)
    assert conn.execute("SELECT count(*) FROM parked_changes").fetchone()[0] == 0
    assert {m["model_id"]: m["status"] for m in _all(conn)} == {"c1": "deleted", "c2": "live"}
    assert owners.foreign_records(conn)["total"] == 1  # d's archive of c's model


@pytest.mark.parametrize(
    ("plan", "args", "says"),
    [
        (changes.alias_set, ("digits", "prod", 2), "Model name 'digits' belongs to tenant 'a'"),
        (changes.alias_removed, ("digits", "prod"), "Model name 'digits' belongs to tenant 'a'"),
        (changes.archived, ("digits:1",), "Model 'a1' belongs to tenant 'a', not to 'b'"),
        (changes.deleted, ("digits@latest",), "Model 'a2' belongs to tenant 'a', not to 'b'"),
    ],
)
def test_a_change_of_another_tenants_name_or_model_is_refused_with_403(plan, args, says) -> None:  # type: ignore[no-untyped-def]
    with pytest.raises(changes.ChangeRefused, match=says) as refused:
        plan(contested().folded(), *args, changes.Asker("b", "mallory"), None)
    assert refused.value.status == 403


def test_the_owner_changes_its_own_and_the_change_says_who() -> None:
    conn = contested().folded()
    moved = changes.alias_set(conn, "digits", "prod", 2, changes.Asker("a", "alice"), "ship")
    assert (moved.tenant, moved.by, moved.actor) == ("a", "a (alice)", "alice")
    assert changes.archived(conn, "b1", changes.Asker("b"), None).tenant == "b"
    with pytest.raises(changes.ChangeRefused, match="No registered name 'nobody'") as unknown:
        changes.alias_removed(conn, "nobody", "prod", changes.Asker("a"), None)
    assert unknown.value.status == 404


def _versions(conn: sqlite3.Connection) -> list[sqlite3.Row]:
    return conn.execute(
        "SELECT version, model_id FROM model_versions WHERE name = 'digits' ORDER BY version"
    ).fetchall()


def _all(conn: sqlite3.Connection) -> list[dict[str, object]]:
    return list_models(conn, status="all", limit=100).items
