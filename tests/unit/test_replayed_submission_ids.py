"""A bare submission (no job_id, no key) keeps its derived id when a replay re-sends it.

The id is derived from where the submission first landed; the replay header names that place,
so a replay of jobs.submitted onto itself re-drives the same jobs instead of creating new ones
(tests/integration/test_faults.py shows it end to end).
"""

from __future__ import annotations

import json

from sparktrainer.contracts.envelope import REPLAY_HEADER
from sparktrainer.contracts.events import JobRejected, JobValidated, derived_job_id
from sparktrainer.contracts.records import Received
from sparktrainer.contracts.topics import JOBS_SUBMITTED
from sparktrainer.registry.job_folds import submission_of
from sparktrainer.settings import Limits
from sparktrainer.validation.door import decide

JOB = {
    "name": "bare",
    "type": "train",
    "framework": "pytorch",
    "config": {"architecture": "custom", "input_size": 4, "output_size": 2, "epochs": 1},
}


def record(value: bytes, offset: int, headers: tuple[tuple[str, bytes], ...] = ()) -> Received:
    return Received(JOBS_SUBMITTED, 1, offset, None, value, headers, 0)


def test_a_replayed_bare_submission_keeps_the_id_of_the_original() -> None:
    value = json.dumps(JOB).encode()
    original = decide(record(value, 7), None, Limits())
    replayed = decide(
        record(value, 42, ((REPLAY_HEADER, f"{JOBS_SUBMITTED}/1/7".encode()),)), None, Limits()
    )
    assert isinstance(original, JobValidated) and isinstance(replayed, JobValidated)
    assert original.job_id == replayed.job_id == derived_job_id(JOBS_SUBMITTED, 1, 7)


def test_an_unreadable_replayed_record_is_rejected_under_the_original_id() -> None:
    replayed = decide(
        record(b"\xff not json", 42, ((REPLAY_HEADER, f"{JOBS_SUBMITTED}/0/3".encode()),)),
        None,
        Limits(),
    )
    assert isinstance(replayed, JobRejected)
    assert replayed.job_id == derived_job_id(JOBS_SUBMITTED, 0, 3)


def test_the_read_model_files_it_under_the_same_id() -> None:
    value = json.dumps(JOB).encode()
    headers = ((REPLAY_HEADER, f"{JOBS_SUBMITTED}/1/7".encode()),)
    submission = submission_of(Received(JOBS_SUBMITTED, 1, 42, None, value, headers, 0), 1 << 20)
    assert submission is not None and submission.job_id == derived_job_id(JOBS_SUBMITTED, 1, 7)


def test_a_malformed_replay_header_falls_back_to_the_record_itself() -> None:
    value = json.dumps(JOB).encode()
    for bad in (b"", b"nonsense", b"t/x/1", b"t/1/-2", b"/1/2"):
        verdict = decide(record(value, 42, ((REPLAY_HEADER, bad),)), None, Limits())
        assert verdict.job_id == derived_job_id(JOBS_SUBMITTED, 1, 42), bad


def test_an_explicit_job_id_still_wins() -> None:
    headers = ((REPLAY_HEADER, f"{JOBS_SUBMITTED}/1/7".encode()),)
    value = json.dumps({**JOB, "job_id": "mine"}).encode()
    named = decide(record(value, 42, headers), None, Limits())
    assert named.job_id == "mine"
