"""Faults of the object store: down inside an upload, down past its retry budget, a hostile file.

The jobs' object store is a second SeaweedFS, so the broker (which logs to the stack's own) stays
up. Each test checks what a user is promised: a job ends once, nothing half-written is listed.
"""

from __future__ import annotations

import asyncio
import hashlib
import time
from collections.abc import AsyncIterator
from pathlib import Path

import pytest
import torch

from sparktrainer.bus.kafka import send
from sparktrainer.contracts.envelope import encode
from sparktrainer.contracts.events import (
    CheckpointSaved,
    JobCompleted,
    JobFailed,
    JobStarted,
    ModelRegistered,
)
from sparktrainer.contracts.topics import (
    JOBS_SUBMITTED,
)
from sparktrainer.embedded import embedded_available
from sparktrainer.settings import Settings
from sparktrainer.storage.s3 import ObjectStore, sha256_file
from tests.integration.faults_kit import (
    STORY_TOPICS,
    S3Gate,
    S3Server,
    Services,
    assert_answered_once,
    kinds,
    log,
    log_ends,
    mlp_job,
    read_log,
    stories,
    validated,
)
from tests.integration.tap import produce

pytestmark = [pytest.mark.integration]


# -- the object store --------------------------------------------------------------------------
#
# The jobs' object store is a second SeaweedFS, reached through a relay (S3Gate) that holds the
# first request of the upload under test; the server is stopped while that request waits.
# Why not stop the stack's own SeaweedFS: tansu keeps its log there, so the broker would go
# down too and a failure could not be told apart from the broker outage tested above (MinIO
# and Kafka are separate services in production as well).


@pytest.fixture
async def jobstore(stack: Settings, tmp_path: Path) -> AsyncIterator[tuple[S3Server, S3Gate]]:
    if not embedded_available():
        pytest.skip("needs sparktrainer[embedded] (a second SeaweedFS to stop)")
    server = S3Server(tmp_path / "jobstore")
    await asyncio.to_thread(server.start, stack)
    gate = S3Gate(server.ports["s3"])
    await gate.start()
    try:
        yield server, gate
    finally:
        await gate.stop()
        await asyncio.to_thread(server.stop)


async def _outage(server: S3Server, gate: S3Gate, base: Settings, hold_s: float | None) -> float:
    """Wait for the held upload, stop the server under it; start it again after ``hold_s``."""
    await asyncio.wait_for(gate.held.wait(), 120)
    started = time.monotonic()
    await asyncio.to_thread(server.stop)
    gate.release()
    if hold_s is None:
        return 0.0
    await asyncio.sleep(hold_s)
    await asyncio.to_thread(server.start, base)
    return time.monotonic() - started


def _assert_model_complete(store: ObjectStore, model_id: str) -> dict:
    """metadata.json is there and every file it lists is there, whole (size and sha256)."""
    meta = store.get_json(f"models/{model_id}/metadata.json")
    assert meta["artifacts"], meta
    for artifact in meta["artifacts"]:
        data = store.get_bytes(f"models/{model_id}/{artifact['path']}")
        assert len(data) == artifact["size_bytes"], artifact
        assert hashlib.sha256(data).hexdigest() == artifact["sha256"], artifact
    return meta


@pytest.mark.slow
async def test_object_store_outage_inside_uploads_is_ridden_out_by_retries(
    settings: Settings, jobstore: tuple[S3Server, S3Gate], tmp_path: Path
) -> None:
    """SeaweedFS stops inside a checkpoint upload, then inside the final upload; back ~2 s later."""
    server, gate = jobstore
    budget = {"s3_retry_attempts": 7, "s3_retry_backoff_s": 0.2}  # 12.6 s of backoff in all
    jobs_settings = server.settings(settings, gate.port).model_copy(update=budget)
    store = ObjectStore.from_settings(server.settings(settings))  # direct, not through the gate
    mark = await log_ends(settings, STORY_TOPICS)
    ids = []
    async with Services(settings, tmp_path / "reg.sqlite3", trainer_settings=jobs_settings) as svc:
        assert svc.producer is not None
        for where in ("checkpoints", "models"):
            job = mlp_job(f"s3-{where}", epochs=3)
            ids.append(job["job_id"])
            gate.arm(f"PUT /{jobs_settings.s3_bucket}/{where}/{job['job_id']}/".encode())
            await produce(svc.producer, JOBS_SUBMITTED, job)
            down_s = await _outage(server, gate, settings, hold_s=1.0)
            log(f"object store down {down_s:.1f} s inside a {where} upload")
            statuses = await svc.wait_terminal([job["job_id"]], timeout_s=120)
            assert statuses == {job["job_id"]: "completed"}, svc.job_row(job["job_id"])
            assert svc.model_row(job["job_id"]) is not None
            _assert_model_complete(store, job["job_id"])
            assert not list(store.list(f"checkpoints/{job['job_id']}/"))  # cleaned up
    told = stories(await read_log(settings, mark))
    for job_id in ids:
        assert isinstance(assert_answered_once(told[job_id], job_id), JobCompleted)
        assert len(told[job_id].distinct(JobStarted)) == 1  # retried uploads, not a retrained job
    # The checkpoint caught in the outage was uploaded in the end, and announced once.
    saved = told[ids[0]].distinct(CheckpointSaved)
    assert sorted(c.epoch for c in saved) == [1, 2, 3], saved


@pytest.mark.slow
async def test_object_store_down_past_the_retry_budget_fails_the_job_and_lists_nothing(
    settings: Settings, jobstore: tuple[S3Server, S3Gate], tmp_path: Path
) -> None:
    """SeaweedFS stops inside the final upload and stays down: the job fails, saying why."""
    server, gate = jobstore
    budget = {"s3_retry_attempts": 3, "s3_retry_backoff_s": 0.1}
    jobs_settings = server.settings(settings, gate.port).model_copy(update=budget)
    store = ObjectStore.from_settings(server.settings(settings))
    mark = await log_ends(settings, STORY_TOPICS)
    async with Services(settings, tmp_path / "reg.sqlite3", trainer_settings=jobs_settings) as svc:
        assert svc.producer is not None
        job = mlp_job("s3-down", epochs=2)
        job_id = job["job_id"]
        gate.arm(f"PUT /{jobs_settings.s3_bucket}/models/{job_id}/".encode())
        await produce(svc.producer, JOBS_SUBMITTED, job)
        await _outage(server, gate, settings, hold_s=None)
        statuses = await svc.wait_terminal([job_id], timeout_s=120)
        row = svc.job_row(job_id)
        assert statuses == {job_id: "failed"}, row
        # The settings bound the wait: 3 attempts of each call that meets the dead server (the
        # upload, then the attempt's own reads: 11 connections in all here), no more. minio's
        # hidden retries (5 more a call, turned off by s3.py) would make it six times as many.
        assert 3 <= gate.refused <= 30, gate.refused
        assert row is not None and "StorageError" in row["reason"], row
        assert "failed after 3 attempts" in row["reason"], row["reason"]
        assert "Traceback" not in row["reason"]
        log("failed as:", row["reason"])
        await asyncio.to_thread(server.start, settings)  # back, to look at what is there
        assert not store.exists(f"models/{job_id}/metadata.json")
        assert svc.model_row(job_id) is None
        after = mlp_job("s3-back", epochs=1)  # the same trainer goes on once the store is back
        await produce(svc.producer, JOBS_SUBMITTED, after)
        statuses = await svc.wait_terminal([after["job_id"]], timeout_s=120)
        assert statuses == {after["job_id"]: "completed"}, svc.job_row(after["job_id"])
        _assert_model_complete(store, after["job_id"])
    told = stories(await read_log(settings, mark))
    end = assert_answered_once(told[job_id], job_id)
    assert isinstance(end, JobFailed), kinds(told[job_id])
    assert not told[job_id].distinct(ModelRegistered)


# -- hostile stored files ----------------------------------------------------------------------


class _Payload:
    """Unpickling this calls open(marker, "w"): a stand-in for any code a pickle may run."""

    def __init__(self, marker: Path) -> None:
        self.marker = marker

    def __reduce__(self):
        return (open, (str(self.marker), "w"))


async def test_a_checkpoint_carrying_a_pickle_fails_the_job_and_never_runs(
    settings: Settings, store: ObjectStore, tmp_path: Path
) -> None:
    """checkpoints/{id}/latest.pt holds a pickled object: refused before anything in it runs."""
    job = validated(mlp_job("pickled", epochs=2))
    marker = tmp_path / "payload-ran"
    evil = tmp_path / "latest.pt"
    torch.save({"format": "sparktrainer.resume.v1", "epoch": 1, "step": 1,
                "model": _Payload(marker), "optimizer": {}}, evil)  # fmt: skip
    # The payload is live: a plain torch.load (weights_only=False) would run it.
    proof = tmp_path / "proof"
    torch.save(_Payload(proof), tmp_path / "proof.pt")
    torch.load(tmp_path / "proof.pt", weights_only=False)
    assert proof.exists()
    # Planted with its own sha256 recorded, as someone who knows the layout would: the hash
    # check passes (tests/unit/training/test_trainer_defence_units.py shows it refusing other
    # bytes), so this is the weights-only load's turn.
    store.put_file(f"checkpoints/{job.job_id}/latest.pt", evil, sha256=sha256_file(evil))
    mark = await log_ends(settings, STORY_TOPICS)
    async with Services(settings, tmp_path / "reg.sqlite3") as svc:
        assert svc.producer is not None
        await send(svc.producer, encode(job, "test"))
        statuses = await svc.wait_terminal([job.job_id], timeout_s=120)
        row = svc.job_row(job.job_id)
        listed = svc.model_row(job.job_id)
    assert statuses == {job.job_id: "failed"}, row
    assert not marker.exists(), "the pickle payload ran"
    assert row is not None and "UnsafeArtifactError" in row["reason"], row
    # It names a checkpoint refused for not being weights-only (the local file name, not the
    # S3 key: see the report).
    assert "checkpoint" in row["reason"] and "refused" in row["reason"], row["reason"]
    assert "weights-only" in row["reason"], row["reason"]
    assert listed is None
    assert not store.exists(f"models/{job.job_id}/metadata.json")
    story = stories(await read_log(settings, mark))[job.job_id]
    end = assert_answered_once(story, job.job_id)
    assert isinstance(end, JobFailed) and not end.retriable, end  # retrying cannot help
