"""The janitor's schedule (pure: deletions and purges in, models due out) and byte ranges."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest

from sparktrainer.api.routes.model_files import byte_range
from sparktrainer.api.state import ApiError
from sparktrainer.contracts.model_events import ModelDeleted, ModelPurged
from sparktrainer.services.janitor import Janitor
from sparktrainer.settings import Settings

T0 = datetime(2026, 3, 1, tzinfo=UTC)


def owned(model_id: str) -> str | None:
    """Every model the default tenant's (what the registry view says without tenants)."""
    return "default"


def janitor(grace_s: float) -> Janitor:
    # fold() and due() read only the log's events and the clock: no store or producer needed.
    return Janitor(Settings(model_delete_grace_s=grace_s), None, None)  # type: ignore[arg-type]


def test_a_deleted_model_is_due_once_its_grace_has_passed() -> None:
    j = janitor(3600)
    j.fold(ModelDeleted(model_id="m1"), T0)
    j.fold(ModelDeleted(model_id="m2"), T0 + timedelta(minutes=30))
    j.fold(ModelDeleted(model_id="m1"), T0 + timedelta(hours=5))  # a second delete: first wins
    assert j.due(T0 + timedelta(minutes=59), owned) == []
    assert j.due(T0 + timedelta(hours=1), owned) == ["m1"]
    assert j.due(T0 + timedelta(hours=2), owned) == ["m1", "m2"]
    j.fold(ModelPurged(model_id="m1", files_removed=3), T0)
    assert j.due(T0 + timedelta(hours=2), owned) == ["m2"]
    assert j.stats.deletions_seen == 2


def test_the_grace_counts_from_when_the_broker_took_the_deletion_not_its_claimed_at() -> None:
    # The record: a deletion claiming 1970 purged a model 5 s after it was sent.
    j = janitor(24 * 3600)
    j.fold(ModelDeleted(model_id="m1", at=datetime(1970, 1, 1, tzinfo=UTC)), T0)
    assert j.due(T0 + timedelta(seconds=5), owned) == []
    assert j.due(T0 + timedelta(hours=23, minutes=59), owned) == []
    assert j.due(T0 + timedelta(days=1), owned) == ["m1"]


def test_only_the_owners_deletion_counts_and_its_grace_is_the_owners() -> None:
    # Team b forges a deletion of team a's model first; a deletes it an hour later.
    j = janitor(3600)
    j.fold(ModelDeleted(model_id="a1", tenant="b"), T0)
    j.fold(ModelDeleted(model_id="b1", tenant="b"), T0)
    owner = {"a1": "a", "b1": "b"}.get
    assert j.due(T0 + timedelta(hours=5), owner) == ["b1"]  # b's own model only
    assert j.stats.foreign == 1
    j.fold(ModelDeleted(model_id="a1", tenant="a"), T0 + timedelta(hours=1))
    assert j.due(T0 + timedelta(hours=1, minutes=59), owner) == ["b1"]
    assert j.due(T0 + timedelta(hours=2), owner) == ["a1", "b1"]
    j.fold(ModelPurged(model_id="a1", tenant="b", files_removed=0), T0)  # forged: not purged
    j.fold(ModelPurged(model_id="b1", tenant="b", files_removed=2), T0)
    assert j.due(T0 + timedelta(hours=2), owner) == ["a1"]
    assert j.due(T0 + timedelta(hours=2), {}.get) == []  # no registration: nothing to delete
    assert j.stats.foreign == 1 and j.foreign == {("a1", "b")}  # once per model and tenant


def test_other_events_change_nothing() -> None:
    j = janitor(0)
    j.fold(object(), T0)
    j.fold(ModelPurged(model_id="never-deleted", files_removed=0), T0)
    assert j.due(T0, owned) == []


@pytest.mark.parametrize(
    ("header", "size", "span"),
    [
        (None, 100, None),
        ("bytes=0-9", 100, (0, 9)),
        ("bytes=90-", 100, (90, 99)),
        ("bytes=-10", 100, (90, 99)),
        ("bytes=-500", 100, (0, 99)),
        ("bytes=50-5000", 100, (50, 99)),
        ("bytes=0-1,5-6", 100, None),  # several ranges: the whole file
        ("items=0-1", 100, None),  # not bytes: the whole file
    ],
)
def test_byte_ranges(header: str | None, size: int, span: tuple[int, int] | None) -> None:
    assert byte_range(header, size) == span


@pytest.mark.parametrize("header", ["bytes=100-", "bytes=9-3", "bytes=-0"])
def test_unsatisfiable_ranges_are_416(header: str) -> None:
    with pytest.raises(ApiError) as e:
        byte_range(header, 100)
    assert e.value.status == 416 and e.value.headers == {"Content-Range": "bytes */100"}
