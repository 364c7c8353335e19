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


def test_exceptions_map_to_their_reasons() -> None:
    from sparktrainer.errors import (
        DataError,
        InvalidJobError,
        JobTimeout,
        ModelUnavailableError,
        StorageError,
        TrainingError,
    )
    from sparktrainer.training.worker.causes import cause_of_error

    assert cause_of_error(DataError("bad rows")) is FailureReason.DATA
    assert cause_of_error(ModelUnavailableError("gone")) is FailureReason.MODEL_UNAVAILABLE
    assert cause_of_error(InvalidJobError(["no"])) is FailureReason.CONFIG
    assert cause_of_error(JobTimeout("late")) is FailureReason.TIMEOUT
    assert cause_of_error(StorageError("down")) is FailureReason.STORAGE
    assert cause_of_error(MemoryError()) is FailureReason.MEMORY_BUDGET
    assert cause_of_error(TrainingError("x became nan: training diverged")) is (
        FailureReason.DIVERGED
    )
    assert cause_of_error(ValueError("a bug")) is FailureReason.INTERNAL


def test_a_sigkill_is_an_oom_kill_only_with_the_cgroups_word_for_it(tmp_path) -> None:
    import os

    from sparktrainer.training.worker.causes import OomKills, cause_of_exit

    assert cause_of_exit(-9, oom_killed=True) == (FailureReason.OOM_KILLED, 9)
    assert cause_of_exit(-9, oom_killed=False) == (FailureReason.CRASHED, 9)
    assert cause_of_exit(-11, oom_killed=True) == (FailureReason.CRASHED, 11)
    assert cause_of_exit(1, oom_killed=False) == (FailureReason.CRASHED, None)
    # This process's own cgroup files, under a root laid out as the kernel does it.
    for line in open(f"/proc/{os.getpid()}/cgroup").read().splitlines():
        _, controllers, path = line.split(":", 2)
        if "memory" in controllers.split(","):
            folder = tmp_path / "memory" / path.lstrip("/")
            name = "memory.oom_control"
        elif controllers == "":
            folder, name = tmp_path / path.lstrip("/"), "memory.events"
        else:
            continue
        folder.mkdir(parents=True, exist_ok=True)
        (folder / name).write_text("oom_kill_disable 0\noom_kill 2\n")
    watch = OomKills(os.getpid(), root=tmp_path)
    assert watch.files and not watch.happened()
    watch.files[0].write_text("oom_kill_disable 0\noom_kill 3\n")
    assert watch.happened()
