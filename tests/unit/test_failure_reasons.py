"""The failure-reason contract: one table covers every reason; old events still decode."""

from __future__ import annotations

import pytest
from pydantic import ValidationError

from sparktrainer.contracts.events import JobCancelled, JobFailed
from sparktrainer.contracts.failures import RETRY_HELPS, FailureReason, retry_helps


def test_every_reason_says_whether_a_retry_helps() -> None:
    assert set(RETRY_HELPS) == set(FailureReason)
    assert retry_helps(FailureReason.HUNG) and not retry_helps(FailureReason.DATA)


def test_an_event_written_before_causes_existed_still_decodes() -> None:
    old = JobFailed.model_validate_json(
        '{"job_id": "j1", "reason": "boom", "error_type": "TrainingError", "retriable": false}'
    )
    assert old.cause is None and old.signal is None
    cancelled = JobCancelled.model_validate_json('{"job_id": "j1"}')
    assert cancelled.cause is None and not cancelled.retriable


def test_a_cause_round_trips_and_an_unknown_one_is_refused() -> None:
    ev = JobFailed(
        job_id="j1",
        reason="killed",
        error_type="WorkerDied",
        cause=FailureReason.CRASHED,
        signal=11,
    )
    back = JobFailed.model_validate_json(ev.model_dump_json())
    assert back.cause is FailureReason.CRASHED and back.signal == 11
    with pytest.raises(ValidationError):
        JobFailed.model_validate(
            {"job_id": "j1", "reason": "x", "error_type": "x", "cause": "gremlins"}
        )
