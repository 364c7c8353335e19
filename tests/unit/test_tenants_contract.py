"""The tenants file: its grammar, the default tenant, credentials, and the per-tenant doors."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from sparktrainer.contracts import topics
from sparktrainer.contracts.events import JobValidated
from sparktrainer.contracts.tenants import (
    DEFAULT_TENANT,
    Tenants,
    load_tenants,
    token_digest,
)
from sparktrainer.settings import Settings

TWO_TEAMS = {
    "tenants": [
        {
            "name": "vision",
            "weight": 2,
            "cohort": "research",
            "quotas": {"gpu": {"running_jobs": 2, "gpus": 2, "borrow_gpus": 1}},
            "max_priority": "high",
            "kafka_users": ["vision-ci"],
            "token_sha256": [token_digest("vision-token")],
        },
        {"name": "nlp", "cohort": "research", "token_sha256": [token_digest("nlp-token")]},
    ]
}


def test_no_file_is_one_default_tenant_with_every_right() -> None:
    tenants = load_tenants(None)
    assert tenants.names == (DEFAULT_TENANT,)
    assert tenants.default.max_priority == "high"
    assert tenants.default.quota("gpu").gpus is None
    assert not tenants.has_tokens()


def test_a_file_gets_a_default_tenant_and_finds_tenants_by_token(tmp_path: Path) -> None:
    path = tmp_path / "tenants.json"
    path.write_text(json.dumps(TWO_TEAMS))
    tenants = load_tenants(Settings(tenants_file=path).tenants_file)
    assert tenants.names == (DEFAULT_TENANT, "vision", "nlp")
    assert tenants.default.max_priority == "normal"  # a listed file's default is not privileged
    found = tenants.by_token("vision-token")
    assert found is not None and found.name == "vision"
    assert tenants.by_token("vision-token ") is None and tenants.by_token("") is None
    assert tenants.get("vision").quota("gpu").borrow_gpus == 1  # type: ignore[union-attr]
    assert tenants.get("nlp").quota("cpu").running_jobs is None  # type: ignore[union-attr]


def test_toml_files_load_too(tmp_path: Path) -> None:
    path = tmp_path / "tenants.toml"
    path.write_text('[[tenants]]\nname = "vision"\nweight = 3\n[tenants.quotas.cpu]\ngpus = 0\n')
    assert load_tenants(path).get("vision").weight == 3  # type: ignore[union-attr]


@pytest.mark.parametrize(
    "tenants, problem",
    [
        ([{"name": "a.b"}], "not a tenant name"),
        ([{"name": "Vision"}], "not a tenant name"),
        ([{"name": "a"}, {"name": "a"}], "listed twice"),
        ([{"name": "a", "quotas": {"tpu": {}}}], "unknown resource classes"),
        ([{"name": "a", "token_sha256": ["plain-token"]}], "never the tokens"),
        ([{"name": "a", "kafka_users": ["u"]}, {"name": "b", "kafka_users": ["u"]}], "one tenant"),
        ([{"name": "a", "weight": 0}], "greater than 0"),
        ([{"name": "a", "max_priority": "urgent"}], "max_priority"),
        ([{"name": "a", "owner": "x"}], "Extra inputs"),
    ],
)
def test_bad_files_name_the_file_and_the_problem(
    tmp_path: Path, tenants: list[dict[str, object]], problem: str
) -> None:
    path = tmp_path / "t.json"
    path.write_text(json.dumps({"tenants": tenants}))
    with pytest.raises(ValueError, match=problem) as caught:
        load_tenants(path)
    assert str(path) in str(caught.value)


def test_unreadable_files_are_a_clear_error(tmp_path: Path) -> None:
    with pytest.raises(ValueError, match="SPARKTRAINER_TENANTS_FILE"):
        load_tenants(tmp_path / "missing.json")
    (tmp_path / "bad.json").write_text("{not json")
    with pytest.raises(ValueError, match=r"bad\.json"):
        load_tenants(tmp_path / "bad.json")


def test_each_tenant_has_its_own_submission_door() -> None:
    assert topics.submission_topic(DEFAULT_TENANT) == topics.JOBS_SUBMITTED
    door = topics.submission_topic("vision")
    assert door == "sparktrainer.tenants.vision.jobs.submitted"
    assert topics.submission_tenant(door) == "vision"
    assert topics.submission_tenant(topics.JOBS_SUBMITTED) == DEFAULT_TENANT
    for other in (topics.JOBS_VALIDATED, "sparktrainer.tenants.a.b.jobs.submitted", "x"):
        assert topics.submission_tenant(other) is None


def test_old_validated_jobs_decode_as_the_default_tenants() -> None:
    from sparktrainer.contracts.schedule_events import SweepValidated

    assert JobValidated.model_fields["tenant"].default == DEFAULT_TENANT
    assert SweepValidated.model_fields["tenant"].default == DEFAULT_TENANT
    assert Tenants().default.name == DEFAULT_TENANT
