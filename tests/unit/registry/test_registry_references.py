"""A fine-tune names its parent by ID, NAME:VERSION or NAME@ALIAS; the verdict records the id."""

from __future__ import annotations

import pytest
from names_kit import Log, alias, at, named  # type: ignore[import-not-found]
from pydantic import ValidationError

from sparktrainer.contracts.envelope import encode, header_map
from sparktrainer.contracts.events import JobValidated
from sparktrainer.contracts.jobspec import JobRequest
from sparktrainer.contracts.model_events import ModelArchived, ModelDeleted
from sparktrainer.contracts.records import Received
from sparktrainer.registry.directory import ReadModelDirectory
from sparktrainer.settings import Limits
from sparktrainer.validation.checks import validate_job
from sparktrainer.validation.door import decide


@pytest.fixture(scope="module")
def directory() -> ReadModelDirectory:
    log = Log()
    for i, model_id in enumerate(("d1", "d2", "d3")):
        log.add(named(model_id, "digits", t=i))
    log.add(alias("digits", "champion", 2, t=5))
    log.add(ModelArchived(model_id="d1", by="alice", at=at(6)), partition=1)
    log.add(ModelDeleted(model_id="d3", by="bob", at=at(7), reason="leaked"), partition=1)
    conn = log.folded()
    return ReadModelDirectory(lambda: conn)


def finetune(ref: str, **extra: object) -> dict[str, object]:
    return {
        "type": "finetune",
        "framework": "pytorch",
        "config": {"model_source": "model_id", "model_id": ref, "epochs": 1},
        **extra,
    }


def record(body: dict[str, object]) -> Received:
    import json

    return Received("sparktrainer.jobs.submitted", 0, 7, b"job-1", json.dumps(body).encode(), (), 0)


def test_an_alias_resolves_and_the_validated_event_records_the_concrete_parent(
    directory: ReadModelDirectory,
) -> None:
    verdict = decide(record(finetune("digits@champion")), None, Limits(), directory)
    assert isinstance(verdict, JobValidated), verdict
    assert verdict.config.model_id == "d2"  # type: ignore[attr-defined]
    assert verdict.parent_ref is not None
    assert verdict.parent_ref.model_dump() == {
        "ref": "digits@champion",
        "model_id": "d2",
        "name": "digits",
        "version": 2,
        "alias": "champion",
    }
    again = JobValidated.model_validate_json(verdict.model_dump_json())
    assert again.config.model_id == "d2"  # type: ignore[attr-defined]


def test_versions_and_ids_resolve_too(directory: ReadModelDirectory) -> None:
    assert validate_job(finetune("digits:1"), None, None, directory).config.model_id == "d1"  # type: ignore[union-attr]
    result = validate_job(finetune("d2"), None, None, directory)
    assert result.valid and result.parent_ref is not None and result.parent_ref.version == 2


def test_a_deleted_parent_is_rejected_with_who_when_and_why(directory: ReadModelDirectory) -> None:
    result = validate_job(finetune("digits:3"), None, None, directory)
    assert result.errors == [
        "Model 'd3' (digits version 3) was deleted by bob at 2026-01-01T00:00:07.000000+00:00: "
        "leaked: fine-tune another model"
    ]
    assert not validate_job(finetune("d3"), None, None, directory).valid


def test_an_archived_parent_is_usable_with_a_warning(directory: ReadModelDirectory) -> None:
    result = validate_job(finetune("digits:1"), None, None, directory)
    assert result.valid
    assert (
        "Model 'd1' (digits version 1) is archived; it can still be fine-tuned" in result.warnings
    )


def test_unknown_names_are_errors_that_say_what_is_missing(directory: ReadModelDirectory) -> None:
    result = validate_job(finetune("digits@prod"), None, None, directory)
    assert result.errors and "has no alias 'prod' (its aliases: champion)" in result.errors[0]


def test_without_a_directory_only_ids_can_be_fine_tuned() -> None:
    assert validate_job(finetune("d2"), None).valid
    errors = validate_job(finetune("digits@champion"), None).errors
    assert errors and "has no registry to resolve it: give the model id" in errors[0]


def test_a_validated_event_must_name_its_parent_by_id() -> None:
    with pytest.raises(ValidationError, match="not a valid id"):
        JobValidated(
            job_id="j",
            name="n",
            type="finetune",
            framework="pytorch",
            config_kind="pytorch.registered",
            config={"model_source": "model_id", "model_id": "digits@champion"},
        )


@pytest.mark.parametrize(
    "bad", ["digits@", "digits:0", "digits:x", "a/b", "digits@latest@x", "..x"]
)
def test_references_follow_the_grammar(bad: str) -> None:
    assert not validate_job(finetune(bad), None).valid


def test_register_as_follows_the_name_rules_and_its_cap() -> None:
    assert JobRequest.model_validate({"type": "t", "framework": "f", "register_as": "digits-v"})
    with pytest.raises(ValidationError):
        JobRequest.model_validate({"type": "t", "framework": "f", "register_as": "a@b"})
    job = {
        "type": "train",
        "framework": "pytorch",
        "register_as": "digits-classifier",
        "config": {"architecture": "custom", "input_size": 4, "output_size": 2},
    }
    assert validate_job(job, None).valid
    assert validate_job(job, None, Limits(model_name_chars=8)).errors == [
        "register_as (characters) 17 is above this deployment's limit of 8 "
        "(SPARKTRAINER_MAX_MODEL_NAME_CHARS)"
    ]


def test_a_named_registration_is_keyed_by_its_name() -> None:
    rec = encode(named("m1", "digits"), "test")
    assert rec.key == b"digits" and header_map(rec.headers)["ce_subject"] == "m1"
    assert encode(named("m2", None), "test").key == b"m2"
