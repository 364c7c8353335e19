"""Names, versions and aliases in the read model: numbered once, stable in any fold order."""

from __future__ import annotations

import pytest
from names_kit import CHANGES, REGISTERED, Log, alias, at, named, snapshot  # type: ignore[import-not-found]

from sparktrainer.contracts.envelope import decode, encode
from sparktrainer.contracts.model_events import ModelAliasRemoved
from sparktrainer.registry import names
from sparktrainer.registry.fold import apply
from sparktrainer.registry.models import get_model


def story() -> Log:
    """Three versions of digits, one of letters, an alias moved twice and one removed."""
    log = Log()
    for i, model_id in enumerate(("d1", "d2", "d3")):
        log.add(named(model_id, "digits", t=i))
    log.add(named("l1", "letters", t=5), partition=1)
    log.add(named("plain", None, t=6), partition=2)
    log.add(alias("digits", "champion", 1, t=10))
    log.add(alias("digits", "champion", 2, t=11, by="bob"))
    log.add(alias("digits", "champion", 3, t=12))
    log.add(alias("digits", "staging", 3, t=13))
    log.add(ModelAliasRemoved(name="digits", alias="staging", by="carol", at=at(14)))
    return log


def test_three_registrations_of_a_name_are_versions_1_2_3() -> None:
    conn = story().folded()
    detail = names.get_name(conn, "digits")
    assert detail is not None
    assert [(v["version"], v["model_id"]) for v in detail["versions"]] == [
        (1, "d1"),
        (2, "d2"),
        (3, "d3"),
    ]
    d2 = get_model(conn, "d2")
    assert d2 is not None and (d2["registered_name"], d2["version"]) == ("digits", 2)
    plain = get_model(conn, "plain")
    assert plain is not None and plain["registered_name"] is None and plain["versions"] == []


def test_a_redelivered_registration_keeps_its_version() -> None:
    conn = story().folded()
    apply(conn, REGISTERED, 0, 100, named("d1", "digits", t=0))  # redelivery, later offset
    apply(conn, REGISTERED, 0, 101, named("d4", "digits", t=20))
    detail = names.get_name(conn, "digits")
    assert detail is not None
    assert [v["model_id"] for v in detail["versions"]] == ["d1", "d2", "d3", "d4"]


def test_an_alias_moved_twice_keeps_its_history() -> None:
    conn = story().folded()
    moves = names.alias_history(conn, "digits", "champion")
    assert [(m["seq"], m["previous_version"], m["version"], m["by"]) for m in moves] == [
        (1, None, 1, "alice"),
        (2, 1, 2, "bob"),
        (3, 2, 3, "alice"),
    ]
    assert names.alias_target(conn, "digits", "champion") == 3
    staging = names.alias_history(conn, "digits", "staging")
    assert [(m["action"], m["previous_version"], m["by"]) for m in staging] == [
        ("set", None, "alice"),
        ("removed", 3, "carol"),
    ]
    assert names.alias_target(conn, "digits", "staging") is None
    d3 = get_model(conn, "d3")
    assert d3 is not None and d3["aliases"] == ["digits@champion"]


def test_removing_an_alias_twice_records_one_removal() -> None:
    log = story()  # a second DELETE that raced the fold of the first publishes a second event
    log.add(ModelAliasRemoved(name="digits", alias="staging", by="dave", at=at(15)))
    staging = names.alias_history(log.folded(), "digits", "staging")
    assert [(m["action"], m["by"]) for m in staging] == [("set", "alice"), ("removed", "carol")]


def test_every_fold_order_of_the_two_topics_gives_the_same_registry() -> None:
    log = story()
    first = snapshot(log.folded(seed=0), "digits")
    assert first["name"] is not None and first["name"]["aliases"]["champion"]["version"] == 3
    for seed in range(1, 25):
        assert snapshot(log.folded(seed=seed), "digits") == first


def test_a_replayed_copy_of_an_old_move_changes_nothing() -> None:
    log = story()
    conn = log.folded()
    before = snapshot(conn, "digits")
    old = log.parts[(CHANGES, 0)][0]  # champion -> 1, replayed: same event, a later offset
    rec = encode(old, "replay")
    copy = decode(rec.value, rec.headers)
    assert copy.event_id() == old.event_id()  # the move's identity survives the wire
    apply(conn, CHANGES, 0, 500, copy)
    assert snapshot(conn, "digits") == before


def test_aliases_point_at_versions_whatever_came_first() -> None:
    log = Log()
    log.add(alias("late", "champion", 2, t=1))  # the alias event folded before the version
    conn = log.folded()
    # an alias of a name nobody owns yet waits for the name's first registration (its owner)
    assert names.alias_target(conn, "late", "champion") is None
    apply(conn, REGISTERED, 0, 0, named("a", "late"))
    assert names.alias_target(conn, "late", "champion") == 2
    apply(conn, REGISTERED, 0, 1, named("b", "late"))
    b = get_model(conn, "b")
    assert b is not None and b["aliases"] == ["late@champion"]


def test_a_model_under_two_names_shows_the_first_name_in_any_order() -> None:
    log = Log()
    log.add(named("x", "zeta"), partition=0)
    log.add(named("x", "alpha"), partition=1)
    for seed in range(6):
        model = get_model(log.folded(seed), "x")
        assert model is not None and (model["registered_name"], model["version"]) == ("alpha", 1)
        assert model["versions"] == [
            {"name": "alpha", "version": 1},
            {"name": "zeta", "version": 1},
        ]


def test_list_names_counts_versions_and_aliases() -> None:
    page = names.list_names(story().folded())
    assert [(n["name"], n["versions"], n["latest_version"], n["aliases"]) for n in page.items] == [
        ("digits", 3, 3, {"champion": 3}),
        ("letters", 1, 1, {}),
    ]


@pytest.mark.parametrize("bad", ["latest", "v3", "3x", "has space", "a" * 65, ""])
def test_alias_names_follow_the_grammar(bad: str) -> None:
    from sparktrainer.contracts.jobspec import check_alias

    with pytest.raises(ValueError):
        check_alias(bad, settable=True)
