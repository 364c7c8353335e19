"""CloudEvents encoding, without a broker (offset bookkeeping: test_offsets.py)."""

from __future__ import annotations

import json

import pytest

from sparktrainer.contracts.envelope import EnvelopeError, decode, encode, header_map
from sparktrainer.contracts.events import JobFailed, JobProgress, ModelRegistered


def test_binary_mode_headers_and_roundtrip() -> None:
    event = JobFailed(job_id="j-1", reason="NaN loss at epoch 2", error_type="TrainingError")
    rec = encode(event, "sparktrainer/trainer")
    headers = header_map(rec.headers)
    assert headers["ce_specversion"] == "1.0"
    assert headers["ce_type"] == "io.sparktrainer.job.failed.v1"
    assert headers["ce_subject"] == "j-1" and rec.key == b"j-1"
    assert headers["content-type"] == "application/json"
    assert rec.topic == "sparktrainer.jobs.lifecycle"
    assert json.loads(rec.value)["reason"] == "NaN loss at epoch 2"
    assert decode(rec.value, rec.headers) == event


def test_event_ids_are_deterministic_where_a_retry_repeats() -> None:
    a = JobProgress(job_id="j", epoch=1, total_epochs=2, step=5, total_steps=10, loss=0.5)
    b = JobProgress(job_id="j", epoch=1, total_epochs=2, step=5, total_steps=10, loss=0.4)
    c = JobProgress(job_id="j", epoch=1, total_epochs=2, step=6, total_steps=10, loss=0.4)
    assert a.event_id() == b.event_id() != c.event_id()
    assert (
        JobFailed(job_id="j", reason="x", error_type="E").event_id()
        == JobFailed(job_id="j", reason="y", error_type="E").event_id()
    )


def test_registered_event_is_keyed_by_model_id() -> None:
    reg = ModelRegistered(
        model_id="m1",
        job_id="m1",
        name="n",
        framework="pytorch",
        architecture={},
        artifacts=[],
        storage_prefix="models/m1/",
    )
    assert encode(reg, "t").key == b"m1"


def test_decode_refuses_wrong_type_and_junk() -> None:
    rec = encode(JobFailed(job_id="j", reason="r", error_type="E"), "t")
    with pytest.raises(EnvelopeError):
        decode(rec.value, rec.headers, ModelRegistered)
    with pytest.raises(EnvelopeError):
        decode(b"{nope", rec.headers)
