"""Failure reasons: one table covers every reason, old events still decode, exceptions and worker
deaths map to their reason, and the CLI line and the API answer show it."""

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


def test_the_end_line_says_the_cause_the_signal_and_whether_a_retry_helps() -> None:
    from sparktrainer.cli.common import out
    from sparktrainer.cli.progress import JobView

    died = JobFailed(job_id="j1", reason="training worker died (SIGSEGV)", error_type="WorkerDied",
                     retriable=True, cause=FailureReason.CRASHED, signal=11)  # fmt: skip
    with out.capture() as captured, JobView("j1", as_json=False) as view:
        view.update(died)
        view.done("failed")
    assert captured.get().strip() == (
        "failed j1: [crashed, signal 11, retriable] WorkerDied: training worker died (SIGSEGV)"
    )


@pytest.mark.memory
async def test_the_api_and_the_client_show_the_cause(memory_settings, tmp_path) -> None:
    """A failed job's cause, signal and retriable reach GET /api/jobs/{id} (true, not 1)."""
    import asyncio

    import httpx

    from sparktrainer.api.app import create_app
    from sparktrainer.cli.common import publish
    from sparktrainer.client.types import JobState
    from sparktrainer.contracts.envelope import encode

    died = JobFailed(job_id="j-oom", reason="OOM-killed", error_type="WorkerDied",
                     retriable=True, cause=FailureReason.OOM_KILLED, signal=9)  # fmt: skip
    app = create_app(memory_settings, with_projector=True, db_path=tmp_path / "api.sqlite3")
    async with app.router.lifespan_context(app):
        transport = httpx.ASGITransport(app=app)
        async with httpx.AsyncClient(transport=transport, base_url="http://localhost") as api:
            await publish(memory_settings, encode(died, "test"))
            for _ in range(200):  # bounded: 20 s for the projector to fold one record
                r = await api.get("/api/jobs/j-oom")
                if r.status_code == 200:
                    break
                await asyncio.sleep(0.1)
    assert r.status_code == 200, r.text
    body = r.json()
    assert (body["status"], body["cause"], body["signal"]) == ("failed", "oom_killed", 9)
    assert body["retriable"] is True
    state = JobState.model_validate(body)
    assert state.cause == "oom_killed" and state.retriable and state.signal == 9


def test_the_trainers_counter_counts_each_end_by_its_reason() -> None:
    from prometheus_client import CollectorRegistry

    from sparktrainer.contracts.events import JobPreempted, JobValidated
    from sparktrainer.services.trainer_metrics import TrainerObserver

    mlp = {"input_size": 4, "output_size": 2}
    job = JobValidated(job_id="j1", name="j1", type="train", framework="pytorch",
                       config_kind="pytorch.mlp", config=mlp)  # fmt: skip
    observer = TrainerObserver()
    registry = CollectorRegistry()
    registry.register(observer.failures)
    for event in (
        JobFailed(job_id="j1", reason="k", error_type="WorkerDied", cause=FailureReason.OOM_KILLED),
        JobFailed(job_id="j1", reason="k", error_type="WorkerDied", cause=FailureReason.OOM_KILLED),
        JobFailed(job_id="j1", reason="old event", error_type="TrainingError"),
        JobCancelled(job_id="j1", reason="asked", cause=FailureReason.CANCELLED),
        JobCancelled(job_id="j1", reason="late", already_ended="completed"),  # no end of ours
        JobPreempted(job_id="j1", reason="SIGTERM", step=5),
    ):
        observer.observe(job, event)

    def count(reason: str) -> float | None:
        return registry.get_sample_value("sparktrainer_trainer_failures_total", {"reason": reason})

    assert count("oom_killed") == 2 and count("internal") == 1
    assert count("cancelled") == 1 and count("preempted") == 1
