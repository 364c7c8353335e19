"""The trainer's own defence, against the real broker and S3 server, one class of attack a test.

One validator, trainer and projector (in this process; the trainer's worker is its own process)
serve every test here, with a worker memory budget of 1.5 GiB, two starts per job at most and
the trainer's S3 behind a relay that can hold a download.
"""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import pytest
import torch

from sparktrainer.bus.kafka import send
from sparktrainer.contracts.envelope import encode
from sparktrainer.contracts.events import (
    CancelRequested,
    JobCancelled,
    JobCompleted,
    JobFailed,
    JobRejected,
    JobStarted,
    JobValidated,
)
from sparktrainer.contracts.failures import FailureReason
from sparktrainer.contracts.topics import JOBS_SUBMITTED
from sparktrainer.settings import Settings
from sparktrainer.storage.job_logs import logged_attempts
from sparktrainer.storage.s3 import ObjectStore
from tests.integration.faults_kit import (
    STORY_TOPICS,
    S3Gate,
    Services,
    assert_answered_once,
    kinds,
    log_ends,
    mlp_job,
    read_log,
    stories,
    validated,
)
from tests.integration.hostile_kit import npz_bomb
from tests.integration.logs_kit import log_through_cli_and_api
from tests.integration.tap import produce

pytestmark = [pytest.mark.integration]
BUDGET_BYTES = 1536 * 2**20


@pytest.fixture(scope="module")
async def gate(stack: Settings) -> AsyncIterator[S3Gate]:
    """The trainer's S3 goes through this relay: a test can hold one request (a download)."""
    relay = S3Gate(int(str(stack.s3_endpoint).rsplit(":", 1)[1]))
    await relay.start()
    yield relay
    relay.release()
    await relay.stop()


@pytest.fixture(scope="module")
async def svc(
    stack: Settings, gate: S3Gate, tmp_path_factory: pytest.TempPathFactory
) -> AsyncIterator[Services]:
    jobs = stack.model_copy(
        update={
            "worker_memory_budget_bytes": BUDGET_BYTES,
            "job_max_attempts": 2,
            "s3_endpoint": f"http://127.0.0.1:{gate.port}",
            "worker_stop_grace_s": 2.0,
        }
    )
    db = tmp_path_factory.mktemp("defence") / "registry.sqlite3"
    async with Services(stack, db, trainer_settings=jobs) as services:
        yield services


async def _ends(svc: Services, *jobs: dict[str, Any], timeout_s: float = 120) -> dict[str, Any]:
    """Submit the jobs; once they end, each job's story on the log."""
    assert svc.producer is not None
    mark = await log_ends(svc.settings, STORY_TOPICS)
    for job in jobs:
        await produce(svc.producer, JOBS_SUBMITTED, job)
    await svc.wait_terminal([j["job_id"] for j in jobs], timeout_s)
    return stories(await read_log(svc.settings, mark))


async def test_a_job_past_the_memory_budget_fails_naming_it_and_the_trainer_goes_on(
    svc: Services, store: ObjectStore, settings: Settings, tmp_path: Path,
    capsysbinary: pytest.CaptureFixture[bytes],
) -> None:  # fmt: skip
    """Data that expands to 2.4 GB in memory: within the data cap, past the worker's budget."""
    key = f"data/budget-{svc.prefix}.npz"
    store.put_bytes(key, npz_bomb(600_000, 1000))  # a few MB on the wire
    hog = mlp_job("hog", input_size=1000, output_size=2, hidden_layers=[8], epochs=1,
                  data={"source": f"s3://{store.bucket}/{key}"})  # fmt: skip
    after = mlp_job("after-hog", epochs=2)
    told = await _ends(svc, hog, after)
    end = assert_answered_once(told[hog["job_id"]], hog["job_id"])
    assert isinstance(end, JobFailed) and end.error_type == "MemoryBudgetExceeded", end
    assert "worker memory budget of 1.5 GiB" in end.reason, end.reason
    assert "SPARKTRAINER_WORKER_MEMORY_BUDGET_BYTES" in end.reason and not end.retriable
    assert end.cause is FailureReason.MEMORY_BUDGET, end
    text = await log_through_cli_and_api(settings, hog["job_id"], 1, capsysbinary, tmp_path)
    assert b"MemoryError" in text and b"worker memory budget of 1.5 GiB" in text
    assert len(told[hog["job_id"]].distinct(JobStarted)) <= 1  # not retried
    assert isinstance(assert_answered_once(told[after["job_id"]], after["job_id"]), JobCompleted)
    assert svc.alive() == {"validator": True, "trainer": True, "projector": True}


async def test_the_start_past_the_attempt_limit_ends_the_job_before_it_runs(
    svc: Services, store: ObjectStore
) -> None:
    """Two starts already counted (its trainer died twice): the third start is refused."""
    assert svc.producer is not None
    job = validated(mlp_job("exhausted", epochs=2))
    store.put_json(f"jobs/{job.job_id}/attempt.json", {"attempt": 2})
    mark = await log_ends(svc.settings, STORY_TOPICS)
    await send(svc.producer, encode(job, "test"))
    await svc.wait_terminal([job.job_id], 60)
    story = stories(await read_log(svc.settings, mark))[job.job_id]
    end = assert_answered_once(story, job.job_id)
    assert isinstance(end, JobFailed) and end.error_type == "AttemptsExhausted", end
    assert "started 2 times" in end.reason and "SPARKTRAINER_JOB_MAX_ATTEMPTS=2" in end.reason
    assert end.cause is FailureReason.ATTEMPTS_EXHAUSTED and not end.retriable, end
    assert not story.distinct(JobStarted), kinds(story)


async def test_the_trainer_refuses_what_the_validator_passes_but_it_cannot_run(
    svc: Services,
) -> None:
    """world_size 8 is within the cap; a trainer without GPUs runs 2 processes at most."""
    wide = mlp_job("too-wide", distributed={"enabled": True, "world_size": 8})
    told = await _ends(svc, wide)
    story = told[wide["job_id"]]
    assert story.distinct(JobValidated), kinds(story)  # the validator let it through
    end = assert_answered_once(story, wide["job_id"])
    assert isinstance(end, JobFailed) and end.error_type == "InvalidJobError", end
    assert "SPARKTRAINER_CPU_MAX_WORLD_SIZE" in end.reason and not story.distinct(JobStarted)
    assert end.cause is FailureReason.CONFIG, end


async def test_a_taken_id_is_refused_and_a_true_duplicate_stays_one_job(svc: Services) -> None:
    first = mlp_job("owner", epochs=2)
    told = await _ends(svc, first)
    assert isinstance(assert_answered_once(told[first["job_id"]], first["job_id"]), JobCompleted)
    other = {**first, "config": {**first["config"], "epochs": 3}}  # same id, other content
    assert svc.producer is not None
    mark = await log_ends(svc.settings, STORY_TOPICS)
    await produce(svc.producer, JOBS_SUBMITTED, other)
    await produce(svc.producer, JOBS_SUBMITTED, first)  # the very same job again
    takeover = validated(other)  # and straight to the trainers, past the validator
    await send(svc.producer, encode(takeover, "test"))

    async def answered() -> tuple[Any, list[JobRejected]] | None:
        told = stories(await read_log(svc.settings, mark))
        rejected = [e for s in told.values() for e in s.distinct(JobRejected)]
        taken = [e for e in rejected if any("already taken" in m for m in e.errors)]
        again = told.get(first["job_id"])
        return (told, taken) if taken and again and again.distinct(JobValidated) else None

    for _ in range(60):  # the validator answers both submissions; bounded wait, no timing
        if found := await answered():
            break
        await asyncio.sleep(1.0)
    assert found, "the validator did not answer both submissions within 60 s"
    await svc.caught_up()
    told, [refusal] = found
    assert refusal.job_id != first["job_id"]  # answered under its own id: the owner stays
    again = told[first["job_id"]]
    assert again.distinct(JobValidated)  # the duplicate is the same job, validated again
    assert not again.distinct(JobStarted) and not again.distinct(JobRejected), kinds(again)
    row = svc.job_row(first["job_id"])
    assert row is not None and row["status"] == "completed", row


async def test_a_cancel_requested_before_the_job_was_submitted_is_not_honoured(
    svc: Services,
) -> None:
    assert svc.producer is not None
    job = mlp_job("pre-cancelled", epochs=2)
    early = CancelRequested(job_id=job["job_id"], reason="cancelled before it existed")
    await send(svc.producer, encode(early, "test"))
    told = await _ends(svc, job)
    assert isinstance(assert_answered_once(told[job["job_id"]], job["job_id"]), JobCompleted)


async def test_a_tampered_parent_is_refused_before_its_weights_load_and_a_missing_one_named(
    svc: Services, gate: S3Gate, store: ObjectStore, tmp_path: Path, settings: Settings,
    capsysbinary: pytest.CaptureFixture[bytes],
) -> None:  # fmt: skip
    parent = mlp_job("parent", epochs=1)
    told = await _ends(svc, parent)
    assert isinstance(assert_answered_once(told[parent["job_id"]], parent["job_id"]), JobCompleted)
    key = f"models/{parent['job_id']}/model.pth"
    local = tmp_path / "model.pth"
    store.get_file(key, local)
    payload = torch.load(local, weights_only=True)
    payload["model_state_dict"] = {k: v + 1 for k, v in payload["model_state_dict"].items()}
    torch.save(payload, local)  # a well-formed file: only its hash gives it away
    store.put_file(key, local)
    child = {
        **mlp_job("child-of-tampered"),
        "type": "finetune",
        "config": {"model_source": "model_id", "model_id": parent["job_id"], "epochs": 1,
                   "data": {"source": "digits"}},
    }  # fmt: skip
    told = await _ends(svc, child)
    end = assert_answered_once(told[child["job_id"]], child["job_id"])
    assert isinstance(end, JobFailed) and end.error_type == "UnsafeArtifactError", end
    assert "model.pth of model" in end.reason and "sha256" in end.reason, end.reason
    assert end.cause is FailureReason.MODEL_UNAVAILABLE, end
    # The parent's weights go while the trainer's download waits (the validator saw them).
    gate.arm(f"GET /{store.bucket}/{key}".encode())
    orphan = {**child, "job_id": f"orphan-{uuid.uuid4().hex[:8]}"}
    ending = asyncio.ensure_future(_ends(svc, orphan))
    try:
        await asyncio.wait_for(gate.held.wait(), 120)
        store.delete(key)
    finally:
        gate.release()
    told = await ending
    end = assert_answered_once(told[orphan["job_id"]], orphan["job_id"])
    assert isinstance(end, JobFailed) and end.error_type == "ModelUnavailableError", end
    assert end.cause is FailureReason.MODEL_UNAVAILABLE and not end.retriable, end
    text = await log_through_cli_and_api(settings, orphan["job_id"], 1, capsysbinary, tmp_path)
    assert f"model '{parent['job_id']}' is not registered or incomplete".encode() in text


async def test_a_job_stuck_in_setup_is_stopped_by_its_time_limit_and_by_a_cancel(
    svc: Services, gate: S3Gate, store: ObjectStore
) -> None:
    """The data download hangs (the S3 request is held): the stop checks cannot run, so the
    trainer kills the worker a grace period (2 s here) after the limit or the cancel, and goes
    on."""
    assert svc.producer is not None
    key = f"data/held-{uuid.uuid4().hex[:8]}.npz"
    store.put_bytes(key, npz_bomb(100, 64))
    source = {"source": f"s3://{store.bucket}/{key}"}
    timed = mlp_job("stuck-timed", max_runtime_s=2, data=source)
    cancelled = mlp_job("stuck-cancelled", data=source)
    mark = await log_ends(svc.settings, STORY_TOPICS)
    try:
        gate.arm(key.encode())
        await produce(svc.producer, JOBS_SUBMITTED, timed)
        await asyncio.wait_for(gate.held.wait(), 60)
        await svc.wait_terminal([timed["job_id"]], 60)
        gate.release()
        gate.arm(key.encode())
        await produce(svc.producer, JOBS_SUBMITTED, cancelled)
        await asyncio.wait_for(gate.held.wait(), 90)
        cancel = CancelRequested(job_id=cancelled["job_id"], reason="stop it")
        await send(svc.producer, encode(cancel, "test"))
        await svc.wait_terminal([cancelled["job_id"]], 60)
        gate.release()
        after = mlp_job("after-stuck", epochs=1)
        await produce(svc.producer, JOBS_SUBMITTED, after)
        statuses = await svc.wait_terminal([after["job_id"]], 120)
    finally:
        gate.release()
    told = stories(await read_log(svc.settings, mark))
    end = assert_answered_once(told[timed["job_id"]], timed["job_id"])
    assert isinstance(end, JobFailed) and end.error_type == "JobTimeout", end
    assert "time limit of 2 s" in end.reason and "did not stop within 2 s" in end.reason
    assert end.cause is FailureReason.TIMEOUT, end
    assert logged_attempts(store, timed["job_id"]) == [1]  # the killed worker's log is kept
    end = assert_answered_once(told[cancelled["job_id"]], cancelled["job_id"])
    assert isinstance(end, JobCancelled) and "stop it" in end.reason, end
    assert end.cause is FailureReason.CANCELLED, end
    assert statuses == {after["job_id"]: "completed"}
