"""Hostile input at the contract layer: strict JSON, home topics, answers that fit, what jobs
may read, job identity, cancels, the trainer's capacity and its re-check of every cap."""

from __future__ import annotations

import json
from datetime import timedelta
from pathlib import Path
from typing import Any

import pytest

from sparktrainer.contracts.access import Access, bucket_name_problem, hub_name_problem
from sparktrainer.contracts.caps import Capacity, check_capacity
from sparktrainer.contracts.envelope import EnvelopeError, decode, encode
from sparktrainer.contracts.events import (
    CancelRequested,
    JobFailed,
    JobProgress,
    JobRejected,
    JobValidated,
    RecordSource,
    now,
)
from sparktrainer.contracts.fitting import capped, fit
from sparktrainer.contracts.kinds import kind_of
from sparktrainer.contracts.records import Received, content_fingerprint, decode_received
from sparktrainer.contracts.topics import JOBS_LIFECYCLE, MODELS_REGISTERED
from sparktrainer.services.admission import refusals
from sparktrainer.settings import Settings
from sparktrainer.training.runner import CancelBook
from sparktrainer.validation.checks import ValidationResult, select_kind, validate_job
from tests.integration.registry_kit import model
from tests.unit.contracts.test_kinds import HOSTILE, MLP, with_config

# -- strict JSON and home topics -------------------------------------------------------------


@pytest.mark.parametrize("number", [b"NaN", b"Infinity", b"-Infinity", b"1e999"])
def test_nan_infinity_and_overflowing_numbers_are_not_json(number: bytes) -> None:
    record = encode(model("nan-model"), "test")
    value = record.value.replace(b'"input_size":4', b'"input_size":' + number)
    assert value != record.value
    with pytest.raises(EnvelopeError, match="not valid JSON"):
        decode(value, record.headers)


def test_an_event_is_accepted_only_on_its_own_topic() -> None:
    record = encode(model("m1"), "test")

    def on(topic: str) -> Received:
        return Received(topic, 0, 0, record.key, record.value, tuple(record.headers), None)

    assert decode_received(on(MODELS_REGISTERED)).model_id == "m1"
    with pytest.raises(EnvelopeError, match=r"belongs on sparktrainer\.models\.registered"):
        decode_received(on(JOBS_LIFECYCLE))


def test_our_events_take_only_safe_ids() -> None:
    with pytest.raises(ValueError, match="not a valid id"):
        JobFailed(job_id="a\n", reason="r", error_type="E")
    with pytest.raises(ValueError, match="not a valid id"):
        model("../escape")


# -- answers that fit ------------------------------------------------------------------------


def test_a_rejection_with_endless_errors_fits_the_message_limit_and_says_how_many() -> None:
    errors = [f"error {i}: " + "x" * 3000 for i in range(5000)]
    record = encode(JobRejected(job_id="j", errors=errors), "test", max_bytes=64 * 1024)
    assert len(record.value) < 64 * 1024
    kept = decode(record.value, record.headers).errors
    assert kept[-1].startswith("... and ") and kept[-1].endswith(" more")
    assert kept[0].startswith("error 0: xxx") and "more characters" in kept[0]


def test_capped_is_linear_and_keeps_order() -> None:
    messages = ["b", "a", "b", *[f"m{i}" for i in range(100_000)], "a"]
    kept = capped(messages, items=3)
    assert kept == ["b", "a", "m0", "... and 99999 more"]  # 100,002 distinct


def test_an_event_that_cannot_fit_says_so() -> None:
    huge = JobProgress(job_id="j", epoch=1, total_epochs=1, step=1, total_steps=1)
    assert fit(huge, 2000) is huge  # small already
    validated = JobValidated.model_validate(
        {**MLP, "job_id": "j", "name": "n", "config_kind": "pytorch.mlp",
         "config": {**MLP["config"], "hidden_layers": [7] * 200_000}}
    )  # fmt: skip
    with pytest.raises(ValueError, match="cannot be made to fit"):
        fit(validated, 64 * 1024)


# -- what a job may read ---------------------------------------------------------------------


@pytest.mark.parametrize(
    ("source", "needle"),
    [
        ("s3://user:secret@bucket/x.npz", "carries no credentials"),
        ("s3://Bucket_Upper/x.npz", "is not an S3 bucket name"),
        ("s3://192.168.0.1/x.npz", "is not an S3 bucket name"),
        ("s3://ab/x.npz", "is not an S3 bucket name"),
        ("s3://a..b/x.npz", "is not an S3 bucket name"),
        ("s3://other-bucket/x.npz", "is not one this deployment lets jobs read"),
        ("s3://tansu/clusters/x", "holds the broker's log"),
    ],
)
def test_data_buckets_follow_s3_rules_and_the_deployments_list(source: str, needle: str) -> None:
    errors = validate_job(with_config(MLP, data={"source": source}), None).errors
    assert any(needle in e for e in errors), errors


def test_the_broker_log_bucket_is_never_readable_even_when_listed() -> None:
    settings = Settings(data_buckets="tansu, team-data", s3_bucket="sparktrainer")
    access = Access.from_settings(settings)
    assert access.data_buckets == frozenset({"team-data"})
    assert access.bucket_problem("s3://team-data/x.npz") is None
    assert bucket_name_problem("team-data") is None


def test_local_models_only_under_the_listed_roots(tmp_path: Path) -> None:
    inside, outside = tmp_path / "models" / "bert", tmp_path / "elsewhere"
    inside.mkdir(parents=True)
    outside.mkdir()
    (inside / "escape").symlink_to(outside)
    job = {"type": "finetune", "framework": "huggingface",
           "config": {"model_source": "local", "model_path": str(inside)}}  # fmt: skip
    assert any("is off on this deployment" in e for e in validate_job(job, None).errors)
    access = Access(local_model_roots=((tmp_path / "models").resolve(),))
    assert access.local_path_problem(str(inside)) is None
    for path in (str(outside), str(inside / ".." / ".." / "elsewhere"), str(inside / "escape")):
        assert "is outside the folders" in (access.local_path_problem(path) or ""), path
    assert "not a usable path" in (access.local_path_problem("a\x00b") or "")


@pytest.mark.parametrize(
    "name", ["https://user:pw@evil.example/m", "org/../x", "a/b/c", "org--x/y", "/abs", ""]
)
def test_hub_names_are_repository_ids(name: str) -> None:
    assert hub_name_problem(name) is not None
    assert hub_name_problem("prajjwal1/bert-tiny") is None and hub_name_problem("gpt2") is None


# -- identity and cancels --------------------------------------------------------------------


def _validated(**config: Any) -> JobValidated:
    body = with_config(MLP, **config)
    return JobValidated.model_validate(
        {**body, "job_id": "same-id", "name": "n", "config_kind": "pytorch.mlp"}
    )


def test_the_fingerprint_is_what_the_job_asks_for_not_when_it_was_seen() -> None:
    one = _validated(epochs=3)
    again = one.model_copy(
        update={"warnings": ["w"], "validated_at": now() + timedelta(days=1),
                "source": RecordSource(topic="t", partition=1, offset=9)}
    )  # fmt: skip
    assert content_fingerprint(one) == content_fingerprint(again)
    assert content_fingerprint(one) != content_fingerprint(_validated(epochs=4))


def test_cancels_apply_only_to_jobs_submitted_before_and_are_bounded() -> None:
    job = _validated(epochs=3)
    submitted = job.validated_at
    book = CancelBook(max_entries=3, ttl_s=3600)
    book.request(CancelRequested(job_id="same-id", requested_at=submitted - timedelta(seconds=5)))
    assert book.for_job(job) is None  # asked before the job existed
    book.request(CancelRequested(job_id="same-id", requested_at=submitted + timedelta(seconds=1)))
    assert book.for_job(job) is not None
    for i in range(10):
        book.request(CancelRequested(job_id=f"other-{i}"))
    assert list(book.requests) == ["other-7", "other-8", "other-9"]  # the newest few
    book.request(CancelRequested(job_id="old", requested_at=now() - timedelta(hours=2)))
    assert "old" not in book.requests  # past its time


# -- the trainer's own checks ----------------------------------------------------------------


def test_capacity_bounds_processes_by_devices_and_memory_by_the_budget() -> None:
    ddp = lambda n: kind_of("pytorch.mlp").config.model_validate(  # noqa: E731
        {**MLP["config"], "distributed": {"enabled": True, "world_size": n}}
    )
    cpu, gpus = Capacity(10**12, (), 2), Capacity(10**12, (10**10, 10**10), 2)
    assert "SPARKTRAINER_CPU_MAX_WORLD_SIZE" in check_capacity(None, ddp(3), cpu)[0]
    assert check_capacity(None, ddp(2), cpu) == [] and check_capacity(None, ddp(2), gpus) == []
    assert "more than the 2 GPUs" in check_capacity(None, ddp(3), gpus)[0]
    big = validate_job(with_config(MLP, hidden_layers=[4096, 4096]), None)
    assert big.estimate is not None and big.config is not None
    tight = Capacity(big.estimate.memory_bytes // 2, (), 2)
    [error] = check_capacity(big.estimate, big.config, tight)
    assert "SPARKTRAINER_WORKER_MEMORY_BUDGET_BYTES" in error


def _as_validated(job: dict[str, Any]) -> JobValidated | None:
    """The JobValidated anyone could write for a hostile job (None: its config cannot parse)."""
    kind = select_kind(job["framework"], job["type"], job["config"], ValidationResult())
    try:
        config = kind.config.model_validate(job["config"]) if kind else None
    except ValueError:
        return None
    if kind is None or config is None:
        return None
    return JobValidated(job_id="j1", name="n", type=job["type"], framework=kind.framework,
                        config_kind=kind.name, config=config)  # fmt: skip


TRAINER_SIDE = [(name, v, needle) for name, job, needle in HOSTILE if (v := _as_validated(job))]


@pytest.mark.parametrize(("job", "needle"), [h[1:] for h in TRAINER_SIDE],
                         ids=[h[0] for h in TRAINER_SIDE])  # fmt: skip
def test_the_trainer_refuses_every_cap_the_validator_would(job: JobValidated, needle: str) -> None:
    """Written straight to jobs.validated: the trainer's re-check finds the same problem."""
    found = refusals(job, None, Settings(), Capacity(10**13, (), 1000), topic=job.home_topic())
    assert any(needle in e for e in found), found


def test_the_trainer_side_covers_the_size_caps() -> None:
    assert len(TRAINER_SIDE) >= 9, [h[0] for h in TRAINER_SIDE]


# -- times and numbers no read model can hold ------------------------------------------------


@pytest.mark.parametrize("at", ["0001-01-01T00:00:00+05:00", "9999-12-31T23:59:59-05:00"])
def test_a_time_that_utc_cannot_hold_makes_the_record_unreadable(at: str) -> None:
    record = encode(JobFailed(job_id="j1", reason="r", error_type="E"), "test")
    body = json.loads(record.value)
    body["at"] = at
    with pytest.raises(EnvelopeError, match="outside the years 1 to 9999"):
        decode_received(Received(JOBS_LIFECYCLE, 0, 0, b"j1", json.dumps(body).encode(),
                                 tuple(record.headers), None))  # fmt: skip
    offset = JobFailed.model_validate({"job_id": "j1", "reason": "r", "error_type": "E",
                                       "at": "2026-01-01T05:00:00+02:00"})  # fmt: skip
    assert offset.at.utcoffset() == timedelta(0) and offset.at.hour == 3  # held as UTC


@pytest.mark.parametrize("value", [float("nan"), float("inf"), float("-inf")])
def test_nan_and_infinity_are_refused_on_every_number_we_store(value: float) -> None:
    with pytest.raises(ValueError, match="finite number"):
        JobProgress(job_id="j", epoch=1, total_epochs=1, step=1, total_steps=1, loss=value)
