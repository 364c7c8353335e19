"""The ownership rule: who may add a version, move an alias, archive, delete; and what it says."""

from __future__ import annotations

import pytest

from sparktrainer.contracts.model_events import (
    ModelAliasRemoved,
    ModelAliasSet,
    ModelArchived,
    ModelDeleted,
    ModelPurged,
)
from sparktrainer.contracts.ownership import (
    change_subject,
    may_change,
    may_register,
    name_taken,
    not_owner,
)


def test_a_name_is_free_until_its_first_version_then_its_owners() -> None:
    assert may_register(None, "team-b")
    assert may_register("team-a", "team-a") and not may_register("team-a", "team-b")
    assert may_change("team-a", "team-a") and not may_change("team-a", "team-b")
    assert not may_change("default", "team-a") and not may_change("team-a", "default")


@pytest.mark.parametrize(
    ("change", "subject"),
    [
        (ModelAliasSet(name="digits", alias="prod", version=2), ("name", "digits")),
        (ModelAliasRemoved(name="digits", alias="prod"), ("name", "digits")),
        (ModelArchived(model_id="m1"), ("model", "m1")),
        (ModelDeleted(model_id="m1"), ("model", "m1")),
        (ModelPurged(model_id="m1", files_removed=0), ("model", "m1")),
    ],
)
def test_alias_moves_need_the_name_retirements_the_model(change: object, subject: object) -> None:
    assert change_subject(change) == subject  # type: ignore[arg-type]


def test_the_messages_name_the_owner_the_asker_and_what_stays_open() -> None:
    taken = name_taken("digits", "team-a", "team-b")
    assert "'digits'" in taken and "'team-a'" in taken and "'team-b'" in taken
    assert "name of your own" in taken
    refused = not_owner("model", "m1", "team-a", "team-b")
    assert "Model 'm1' belongs to tenant 'team-a', not to 'team-b'" in refused
    assert "archive or delete" in refused and "fine-tuning" in refused
    assert "aliases" in not_owner("name", "digits", "team-a", "team-b")


def test_a_change_record_defaults_to_the_default_tenant_and_checks_the_name() -> None:
    assert ModelArchived(model_id="m1").tenant == "default"  # records from before tenants
    with pytest.raises(ValueError, match="not a tenant name"):
        ModelArchived(model_id="m1", tenant="Team.A")
