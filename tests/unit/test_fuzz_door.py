"""Property tests: any record on the public topic gets exactly one verdict, never an exception."""

from __future__ import annotations

import json
import math
import os

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from sparktrainer.contracts.envelope import decode, encode
from sparktrainer.contracts.events import JobRejected, JobValidated
from sparktrainer.contracts.records import Received
from sparktrainer.settings import Limits
from sparktrainer.validation.door import answer, decide
from tests import guide

# Not traced for coverage: thousands of examples through the same lines, which the door's
# own unit tests cover, took twice as long traced (24 s of CPU against 11 s).
pytestmark = pytest.mark.no_cover

LIMITS = Limits()
# Examples per property in each run of the suite (hypothesis draws new ones every run). A deep
# run: SPARKTRAINER_FUZZ_EXAMPLES=5000 make test PYTEST_ARGS=tests/unit/test_fuzz_door.py
FUZZ_EXAMPLES = int(os.environ.get("SPARKTRAINER_FUZZ_EXAMPLES", "400"))
FUZZ = settings(max_examples=FUZZ_EXAMPLES, deadline=None, suppress_health_check=list(HealthCheck))

json_scalars = st.one_of(
    st.none(),
    st.booleans(),
    st.integers(min_value=-(10**30), max_value=10**30),
    st.floats(allow_nan=True, allow_infinity=True),
    st.text(max_size=40),
    st.sampled_from(
        [
            "../../etc/passwd",
            "..",
            "/abs",
            "a/../../b",
            "\u202egnp.exe",
            "\x00",
            "s3://bucket/../../x",
            "C:\\win",
            "🙂" * 10,
            "ﬁ" * 5,
        ]
    ),
)
json_values = st.recursive(
    json_scalars,
    lambda kids: (
        st.lists(kids, max_size=5) | st.dictionaries(st.text(max_size=12), kids, max_size=6)
    ),
    max_leaves=30,
)
FIELDS = [
    "epochs",
    "batch_size",
    "learning_rate",
    "model_id",
    "model_name",
    "model_path",
    "architecture",
    "model_source",
    "input_size",
    "output_size",
    "hidden_layers",
    "num_classes",
    "data",
    "lora",
    "distributed",
    "precision",
    "channels",
    "num_blocks",
    "input_shape",
]


def _record(value: bytes | None, key: bytes | None = None, headers=()) -> Received:
    return Received("sparktrainer.jobs.submitted", 1, 42, key, value, tuple(headers), None)


def _one_answer(value: bytes | None, key: bytes | None = None, headers=()) -> object:
    out = answer(_record(value, key, headers), None, LIMITS)
    assert len(out) == 1
    event = decode(out[0].value, out[0].headers)
    assert isinstance(event, JobValidated | JobRejected)
    return event


@FUZZ
@given(st.binary(max_size=512), st.one_of(st.none(), st.binary(max_size=40)))
def test_random_bytes(value: bytes, key: bytes | None) -> None:
    _one_answer(value, key)


@FUZZ
@given(json_values)
def test_random_json(value: object) -> None:
    _one_answer(json.dumps(value).encode())


@FUZZ
@given(
    st.dictionaries(st.sampled_from(FIELDS), json_values, max_size=8),
    st.sampled_from(["pytorch", "huggingface", "tensorflow", "x", None]),
    st.sampled_from(["train", "finetune", "", None]),
)
def test_mutated_jobs(config: dict, framework: object, job_type: object) -> None:
    job = {"type": job_type, "framework": framework, "config": config}
    event = _one_answer(json.dumps(job).encode())
    if isinstance(event, JobValidated):  # whatever passed is really sane
        for name in ("epochs", "batch_size", "learning_rate"):
            value = getattr(event.config, name)
            assert not isinstance(value, bool) and math.isfinite(value) and value > 0
        mid = getattr(event.config, "model_id", None) or ""
        assert "/" not in mid and ".." not in mid


@FUZZ
@given(st.sampled_from(guide.complete_jobs()), st.sampled_from(FIELDS), json_values)
def test_guide_jobs_with_one_field_replaced(job: dict, field: str, value: object) -> None:
    job = json.loads(json.dumps(job))
    job["config"][field] = value
    _one_answer(json.dumps(job).encode())


@settings(max_examples=300, deadline=None)
@given(st.integers(min_value=1, max_value=3000))
def test_deep_json(depth: int) -> None:
    _one_answer(b'{"a":' * depth + b"1" + b"}" * depth)
    _one_answer(b"[" * depth + b"]" * depth)


def test_huge_numbers_and_headers() -> None:
    assert isinstance(
        _one_answer(
            b'{"type":"train","framework":"pytorch","config":{"architecture":'
            b'"custom","input_size":1' + b"0" * 4000 + b',"output_size":2}}'
        ),
        JobRejected,
    )
    bad_headers = [("ce_type", b"\xff\xfe"), ("content-type", b"application/cloudevents+json")]
    _one_answer(b'{"specversion":"1.0","type":"x","data":[1]}', headers=bad_headers)
    _one_answer(
        json.dumps(guide.by_name("Initial Model Training")).encode(), headers=[("ce_type", None)]
    )


def test_answers_are_encodable_events() -> None:
    event = decide(_record(b"\x00\x01"), None, LIMITS)
    assert encode(event, "t").key == event.job_id.encode()
