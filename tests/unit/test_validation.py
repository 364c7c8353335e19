"""The validator's checks as plain functions: guide examples, every bad input class."""

from __future__ import annotations

import json
import math

import pytest

from sparktrainer.contracts.events import JobRejected, JobValidated
from sparktrainer.contracts.records import Received
from sparktrainer.settings import Limits
from sparktrainer.validation.checks import validate_job
from sparktrainer.validation.door import decide
from tests import guide

TOPIC = "sparktrainer.jobs.submitted"


def record(value: bytes | None, key: bytes | None = None, headers=(), offset: int = 7) -> Received:
    return Received(TOPIC, 0, offset, key, value, tuple(headers), 1_700_000_000_000)


def test_docs_copy_of_the_guide_is_current() -> None:
    if not guide.SHARED_GUIDE.exists():
        pytest.skip("../shared/ is not beside this checkout")
    assert guide.GUIDE.read_text() == guide.SHARED_GUIDE.read_text()


def test_guide_has_the_examples_we_expect() -> None:
    assert len(guide.complete_jobs()) == 12


@pytest.mark.parametrize(
    "job", guide.complete_jobs(), ids=lambda j: j.get("name") or json.dumps(j)[:60]
)
def test_every_complete_guide_example_is_well_formed(job: dict) -> None:
    result = validate_job(job, store=None)
    if ".." in json.dumps(job.get("config", {}).get("model_id", "")):
        # "abc123-def456-..." is the guide's placeholder for a real id.
        assert result.errors == [
            f"config.model_id: '{job['config']['model_id']}' is not a valid id: use 1-128 "
            "letters, digits, '.', '_' or '-', starting with a letter or digit, and no '..' "
            "(a model is named by ID, NAME:VERSION or NAME@ALIAS) "
            f'(got "{job["config"]["model_id"]}")'
        ]
        return
    assert result.errors == [], result.errors
    assert result.valid
    cfg = result.config.model_dump()
    assert cfg["epochs"] > 0 and cfg["batch_size"] > 0 and cfg["learning_rate"] > 0


def test_torchvision_example_gets_batch_size_default() -> None:
    job = next(j for j in guide.complete_jobs() if j["config"].get("model_source") == "torchvision")
    result = validate_job(job, store=None)
    assert result.config.batch_size == 32 and result.config.pretrained is True
    assert any("pretrained" in w for w in result.warnings)


@pytest.mark.parametrize(
    ("field", "value"),
    [
        ("epochs", 0),
        ("epochs", -3),
        ("batch_size", 0),
        ("learning_rate", -0.1),
        ("epochs", True),
        ("learning_rate", math.nan),
        ("learning_rate", math.inf),
        ("epochs", "10"),
    ],
)
def test_numeric_parameters_must_be_positive_numbers(field: str, value: object) -> None:
    job = guide.by_name("Initial Model Training")
    job["config"][field] = value
    result = validate_job(job, store=None)
    assert not result.valid
    assert any(e.startswith(f"{field} must be a positive number") for e in result.errors), (
        result.errors
    )


def test_all_errors_reported_at_once() -> None:
    job = {
        "type": "retrain",
        "framework": "caffe",
        "config": {
            "architecture": "custom",
            "epochs": -1,
            "batch_size": 0,
            "learning_rate": "fast",
            "colour": "red",
        },
    }
    errors = validate_job(job, store=None).errors
    assert 'Invalid framework "caffe": must be one of pytorch, tensorflow, huggingface' in errors
    assert 'Invalid job type "retrain": must be one of train, finetune, sweep' in errors
    assert len(errors) == 2  # no framework: the config cannot be typed yet


def test_config_errors_are_all_listed() -> None:
    job = {
        "type": "train",
        "framework": "pytorch",
        "config": {
            "architecture": "custom",
            "epochs": -1,
            "batch_size": 0,
            "learning_rate": "fast",
            "colour": "red",
        },
    }
    errors = validate_job(job, store=None).errors
    assert "Missing required field 'config.input_size'" in errors
    assert "Missing required field 'config.output_size'" in errors
    assert "Unknown field 'config.colour': remove it or check its spelling" in errors
    assert (
        sum(e.endswith("must be a positive number") or "positive number" in e for e in errors) == 3
    )


def test_tensorflow_is_known_but_not_run() -> None:
    errors = validate_job({"type": "train", "framework": "tensorflow", "config": {}}, None).errors
    assert errors == [
        "Framework 'tensorflow' is recognised but not supported by this deployment's "
        "trainers: use one of pytorch, huggingface"
    ]


@pytest.mark.parametrize(
    ("config", "needle"),
    [
        (
            {"architecture": "transformer"},
            'Unknown architecture "transformer": must be one of custom, resnet',
        ),
        (
            {"model_source": "torchvision", "model_name": "alexnet", "num_classes": 3},
            "config.model_name must be one of 'resnet18', 'resnet50', 'vgg16' or 'densenet121'",
        ),
        ({"model_source": "zoo"}, 'Unknown model_source "zoo"'),
        ({}, "config.architecture is required"),
        (
            {"architecture": "custom", "input_size": 4, "output_size": 2, "activation": "swish"},
            "config.activation must be one of",
        ),
        (
            {"architecture": "resnet", "num_classes": 2, "num_blocks": [1, 1], "channels": [8]},
            "num_blocks has 2 stages but channels has 1",
        ),
    ],
)
def test_unknown_names_get_clear_messages(config: dict, needle: str) -> None:
    errors = validate_job({"type": "train", "framework": "pytorch", "config": config}, None).errors
    assert any(needle in e for e in errors), errors


@pytest.mark.parametrize(
    "config",
    [
        {"model_source": "model_id", "model_id": "../../etc/passwd"},
        {"model_source": "model_id", "model_id": "a/b"},
        {"model_source": "model_id", "model_id": ".."},
        {
            "architecture": "custom",
            "input_size": 4,
            "output_size": 2,
            "data": {"source": "s3://b/../x"},
        },
        {
            "architecture": "custom",
            "input_size": 4,
            "output_size": 2,
            "data": {"source": "/etc/passwd"},
        },
    ],
)
def test_path_like_fields_cannot_escape(config: dict) -> None:
    assert not validate_job(
        {"type": "finetune", "framework": "pytorch", "config": config}, None
    ).valid


def test_hf_model_name_cannot_be_a_path() -> None:
    job = {"type": "train", "framework": "huggingface", "config": {"model_name": "../../secret"}}
    assert not validate_job(job, None).valid


def test_caps_are_settings() -> None:
    job = guide.by_name("Initial Model Training")
    limits = Limits(epochs=5, batch_size=16)
    errors = validate_job(job, None, limits).errors
    assert (
        "config.epochs 20 is above this deployment's limit of 5 (SPARKTRAINER_MAX_EPOCHS)" in errors
    )
    assert (
        "config.batch_size 64 is above this deployment's limit of 16 "
        "(SPARKTRAINER_MAX_BATCH_SIZE)" in errors
    )


# -- the public door ------------------------------------------------------------------


def test_bare_json_without_key_or_headers_is_a_submission() -> None:
    job = guide.by_name("Initial Model Training")
    verdict = decide(record(json.dumps(job).encode()), None, Limits())
    assert isinstance(verdict, JobValidated)
    assert verdict.job_id.startswith("job-") and verdict.name == "Initial Model Training"
    again = decide(record(json.dumps(job).encode()), None, Limits())
    assert again.job_id == verdict.job_id  # a redelivery is the same job
    assert verdict.config.batch_size == 64 and verdict.config.activation == "relu"


def test_job_id_from_body_then_key() -> None:
    job = {**guide.by_name("Initial Model Training"), "job_id": "my-job-1"}
    assert (
        decide(record(json.dumps(job).encode(), key=b"other"), None, Limits()).job_id == "my-job-1"
    )
    del job["job_id"]
    assert (
        decide(record(json.dumps(job).encode(), key=b"keyed-2"), None, Limits()).job_id == "keyed-2"
    )


def test_structured_mode_cloudevent_is_accepted() -> None:
    job = guide.by_name("Initial Model Training")
    ce = {
        "specversion": "1.0",
        "id": "x",
        "source": "ui",
        "type": "io.sparktrainer.job.submitted.v1",
        "datacontenttype": "application/json",
        "data": job,
    }
    headers = [("content-type", b"application/cloudevents+json")]
    assert isinstance(
        decide(record(json.dumps(ce).encode(), headers=headers), None, Limits()), JobValidated
    )


@pytest.mark.parametrize(
    ("value", "needle"),
    [
        (b"not json", "not valid JSON"),
        (b"\xff\xfe\x00", "not valid JSON"),
        (None, "tombstone"),
        (b"[1,2,3]", "must be a JSON object"),
        (b'"a string"', "must be a JSON object"),
        (b"{}", "Missing required field 'type'"),
        (b'{"type": 1, "framework": [], "config": "x"}', "type: Input should be a valid string"),
        (
            b'{"type":"train","framework":"pytorch","config":{},"surprise":1}',
            "Unknown field 'surprise'",
        ),
        (b"[" * 5000 + b"]" * 5000, "not valid JSON"),
    ],
)
def test_bad_input_is_rejected_with_a_reason(value: bytes | None, needle: str) -> None:
    verdict = decide(record(value, key=b"\x00bad key"), None, Limits())
    assert isinstance(verdict, JobRejected)
    assert any(needle in e for e in verdict.errors), verdict.errors
    assert verdict.source.offset == 7 and verdict.source.topic == TOPIC


def test_oversized_submission_is_rejected_before_parsing() -> None:
    verdict = decide(record(b"{" + b" " * 300_000 + b"}"), None, Limits())
    assert isinstance(verdict, JobRejected)
    assert "above the limit of 262144 bytes" in verdict.errors[0]
