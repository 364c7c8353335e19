"""Fencing (issue 18 item 3): an attempt writes and speaks only while it is its job's latest start.

The real ObjectStore over a minio client kept in a dict: the store's own write path runs, and
a refused write never reaches the client. The real S3 server's side is
tests/integration/test_fencing_store.py; a trainer cut off for real is tests/integration/
test_hosts.py.
"""

from __future__ import annotations

import asyncio
import io
import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
from minio.error import S3Error

from sparktrainer.contracts.envelope import OutRecord, encode
from sparktrainer.contracts.event_base import now
from sparktrainer.contracts.events import JobProgress, JobValidated, ModelRegistered
from sparktrainer.errors import FencedOff, StorageError
from sparktrainer.storage.fencing import AttemptFence, superseded
from sparktrainer.storage.outcomes import hand_over, next_attempt, read_outcome, recorded_attempt
from sparktrainer.storage.s3 import ObjectStore
from sparktrainer.training.ends import SOURCE
from sparktrainer.training.runner import CancelBook, drive_job, fenced_send, still_owned
from sparktrainer.training.worker.protocol import Outcome

JOB = "fenced-job"
CKPT = f"checkpoints/{JOB}/latest.pt"


@dataclass
class _Object:
    object_name: str


class _Response:
    def __init__(self, data: bytes) -> None:
        self.data = data

    def read(self) -> bytes:
        return self.data

    def close(self) -> None:
        pass

    def release_conn(self) -> None:
        pass


class DictMinio:
    """The minio client calls ObjectStore makes, on a dict; ``calls`` counts writes reaching it."""

    def __init__(self) -> None:
        self.objects: dict[str, bytes] = {}
        self.writes = 0
        self.get_failures = 0  # the next this many reads fail as a dropped connection

    def put_object(self, bucket: str, key: str, data: io.BytesIO, length: int, **_: Any) -> None:
        self.writes += 1
        self.objects[key] = data.read()

    def fput_object(self, bucket: str, key: str, path: str, **_: Any) -> None:
        self.writes += 1
        self.objects[key] = Path(path).read_bytes()

    def copy_object(self, bucket: str, key: str, source: Any) -> None:
        self.writes += 1
        self.objects[key] = self.objects[source.object_name]

    def remove_object(self, bucket: str, key: str) -> None:
        self.writes += 1
        self.objects.pop(key, None)

    def list_objects(self, bucket: str, prefix: str, recursive: bool) -> list[_Object]:
        return [_Object(k) for k in sorted(self.objects) if k.startswith(prefix)]

    def get_object(self, bucket: str, key: str, **_: Any) -> _Response:
        if self.get_failures:
            self.get_failures -= 1
            raise ConnectionResetError("dropped")
        if key not in self.objects:
            raise S3Error(None, "NoSuchKey", "missing", key, "r", "h")  # type: ignore[arg-type]
        return _Response(self.objects[key])


@pytest.fixture
def client() -> DictMinio:
    return DictMinio()


@pytest.fixture
def store(client: DictMinio) -> ObjectStore:
    return ObjectStore(client, "bucket", retry_attempts=3, retry_backoff_s=0.0)  # type: ignore[arg-type]


def test_the_rule() -> None:
    assert superseded(2, 2) is None
    assert "superseded by attempt 3" in (superseded(2, 3) or "")
    assert "superseded by attempt 1" in (superseded(2, 1) or "")  # numbers only grow: refused
    assert superseded(1, None) is None  # no record: no later start (each writes it first)
    assert "unreadable" in (superseded(1, 0) or "")


def test_a_stale_attempts_writes_never_reach_the_server(
    store: ObjectStore, client: DictMinio, tmp_path: Path
) -> None:
    old = AttemptFence(store, JOB, next_attempt(store, JOB)).guarded()
    old.put_bytes(CKPT, b"attempt 1's checkpoint")
    new = AttemptFence(store, JOB, next_attempt(store, JOB)).guarded()  # the job moved
    new.put_bytes(CKPT, b"attempt 2's checkpoint")
    local = tmp_path / "file"
    local.write_bytes(b"stale")
    before, writes = dict(client.objects), client.writes
    for write in (
        lambda: old.put_bytes(CKPT, b"stale"),
        lambda: old.put_file(CKPT, local),
        lambda: old.put_json(f"jobs/{JOB}/outcome.json", {"status": "completed"}),
        lambda: old.copy(CKPT, f"checkpoints/{JOB}/previous.pt"),
        lambda: old.delete(CKPT),
        lambda: old.delete_prefix(f"checkpoints/{JOB}/"),
        lambda: old.on_bucket("other").put_bytes("x", b"stale"),
    ):
        with pytest.raises(FencedOff, match="attempt 1 was superseded by attempt 2"):
            write()
    assert (client.objects, client.writes) == (before, writes)
    new.put_bytes(CKPT, b"attempt 2's next checkpoint")  # the owner writes on
    assert client.objects[CKPT] == b"attempt 2's next checkpoint"


def test_the_fence_is_read_before_each_try_of_a_write(
    store: ObjectStore, client: DictMinio
) -> None:
    fenced = AttemptFence(store, JOB, next_attempt(store, JOB)).guarded()
    client.get_failures = 2  # the fence's read fails twice: retried with the write, then lands
    fenced.put_bytes(CKPT, b"one")
    assert client.objects[CKPT] == b"one"
    client.get_failures = 3  # past the store's 3 tries: the write fails, and never landed
    with pytest.raises(StorageError, match="failed after 3 attempts"):
        fenced.put_bytes(CKPT, b"two")
    assert client.objects[CKPT] == b"one"


def test_an_unreadable_attempt_record_fences_every_attempt(
    store: ObjectStore, client: DictMinio
) -> None:
    fenced = AttemptFence(store, JOB, next_attempt(store, JOB)).guarded()
    client.objects[f"jobs/{JOB}/attempt.json"] = b"{not json"
    with pytest.raises(FencedOff, match="unreadable"):
        fenced.put_bytes(CKPT, b"x")
    client.objects[f"jobs/{JOB}/attempt.json"] = b'{"attempt": "one"}'
    with pytest.raises(FencedOff, match="unreadable"):
        fenced.put_bytes(CKPT, b"x")


def test_a_hand_over_keeps_numbers_growing_and_a_stale_one_changes_nothing(
    store: ObjectStore,
) -> None:
    assert next_attempt(store, JOB) == 1
    assert next_attempt(store, JOB) == 2
    hand_over(store, JOB, 1)  # attempt 1 is stale: nothing changes
    assert recorded_attempt(store, JOB) == 2
    hand_over(store, JOB, 2)  # not held against the limit, but the number stays used
    assert recorded_attempt(store, JOB) == 2
    assert not AttemptFence(store, JOB, 1).holds()
    assert next_attempt(store, JOB) == 3  # never a number an earlier attempt had


def _job() -> JobValidated:
    config = {"architecture": "custom", "input_size": 4, "output_size": 2}
    return JobValidated(job_id=JOB, name="j", type="train", framework="pytorch",
                        config_kind="pytorch.mlp", config=config, validated_at=now())  # fmt: skip


class _Logs:
    every_s = 1e9

    def upload(self, store: ObjectStore, job_id: str, attempt: int) -> int:
        return 0

    def discard(self, job_id: str, attempt: int) -> None:
        pass


class MovedWorker:
    """A worker whose job moves to another trainer (a later start is recorded) mid-run."""

    def __init__(self, store: ObjectStore, then: str) -> None:
        self.store, self.then = store, then
        self.logs, self.capacity, self.pid = _Logs(), None, None

    async def run(self, job: JobValidated, attempt: int, on_event: Any) -> Outcome:
        await on_event(_progress(1))
        next_attempt(self.store, job.job_id)  # the new owner's start
        if self.then == "event":
            await on_event(_progress(2))
        registered = ModelRegistered(model_id=JOB, job_id=JOB, name="j", framework="pytorch",
                                     architecture={"architecture": "custom"}, artifacts=[],
                                     storage_prefix=f"models/{JOB}/")  # fmt: skip
        if self.then == "completed":
            return Outcome(status="completed", registered=registered)
        return Outcome(status="failed", reason="boom", retriable=self.then == "retriable")

    def cancel(self, job_id: str, reason: str) -> None:
        pass


@pytest.mark.parametrize("then", ["completed", "failed", "retriable", "event"])
def test_a_job_that_moved_is_never_announced_nor_recorded(store: ObjectStore, then: str) -> None:
    sent: list[OutRecord] = []

    async def send(record: OutRecord) -> None:
        sent.append(record)

    cancels = CancelBook()
    worker = MovedWorker(store, then)
    with pytest.raises(FencedOff, match="attempt 1 was superseded by attempt 2"):
        asyncio.run(drive_job(_job(), worker=worker, store=store, cancels=cancels, send=send))  # type: ignore[arg-type]
    assert [json.loads(r.value)["step"] for r in sent] == [1]  # only what came before the move
    assert read_outcome(store, JOB) is None
    assert recorded_attempt(store, JOB) == 2  # the stale attempt took no retry
    with pytest.raises(FencedOff):  # the record retried on this trainer: still stale
        asyncio.run(still_owned(cancels, JOB))


def _progress(step: int) -> JobProgress:
    return JobProgress(job_id=JOB, attempt=1, epoch=0, total_epochs=1, step=step, total_steps=9)


def test_a_fenced_send_checks_before_each_record(store: ObjectStore) -> None:
    sent: list[OutRecord] = []

    async def send(record: OutRecord) -> None:
        sent.append(record)

    fence = AttemptFence(store, JOB, next_attempt(store, JOB))
    fenced = fenced_send(send, fence)
    asyncio.run(fenced(encode(_progress(1), SOURCE)))
    next_attempt(store, JOB)
    with pytest.raises(FencedOff):
        asyncio.run(fenced(encode(_progress(2), SOURCE)))
    assert len(sent) == 1
