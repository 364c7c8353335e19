"""The read model's fold: idempotent, offsets in the same transaction, terminal status wins."""

from __future__ import annotations

import sqlite3
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest

from sparktrainer.contracts.events import (
    Artifact,
    JobCancelled,
    JobCompleted,
    JobFailed,
    JobProgress,
    JobRejected,
    JobStarted,
    JobValidated,
    ModelRegistered,
)
from sparktrainer.contracts.records import Received
from sparktrainer.registry import db, job_folds, store
from sparktrainer.registry.fold import Folded, apply, apply_many
from sparktrainer.registry.job_folds import Submission
from sparktrainer.registry.jobs import get_job, list_jobs
from sparktrainer.registry.models import get_model, list_models
from sparktrainer.registry.rows import iso

T0 = datetime(2025, 1, 1, tzinfo=UTC)
LC = "sparktrainer.jobs.lifecycle"


def at(seconds: float) -> datetime:
    return T0 + timedelta(seconds=seconds)


@pytest.fixture
def conn() -> sqlite3.Connection:
    return store.connect(":memory:")


def validated(job_id: str = "j1", t: float = 1) -> JobValidated:
    return JobValidated(
        job_id=job_id,
        name="mlp",
        type="train",
        framework="pytorch",
        config_kind="pytorch.mlp",
        config={"input_size": 4, "output_size": 2},
        warnings=["w"],
        validated_at=at(t),
    )


def started(job_id: str = "j1", t: float = 2, attempt: int = 1) -> JobStarted:
    return JobStarted(
        job_id=job_id,
        attempt=attempt,
        at=at(t),
        name="mlp",
        framework="pytorch",
        config_kind="pytorch.mlp",
        device="cpu",
        worker="w1",
        total_epochs=3,
    )


def progress(job_id: str = "j1", t: float = 3, epoch: int = 1, attempt: int = 1) -> JobProgress:
    return JobProgress(
        job_id=job_id,
        attempt=attempt,
        at=at(t),
        epoch=epoch,
        total_epochs=3,
        step=10,
        total_steps=30,
        loss=0.5,
        accuracy=0.8,
        eta_s=12.0,
    )


def registered(model_id: str, base: str | None = None, tags: list[str] | None = None, **kw: Any):
    return ModelRegistered(
        model_id=model_id,
        job_id=model_id,
        name=f"model {model_id}",
        framework="pytorch",
        architecture={"architecture": "custom"},
        artifacts=[Artifact(path="model.pth", size_bytes=10, sha256="ab" * 32)],
        storage_prefix=f"models/{model_id}/",
        base_model_id=base,
        tags=tags or [],
        **kw,
    )


def fold_all(conn: sqlite3.Connection, *events: Any, topic: str = LC) -> None:
    for offset, event in enumerate(events):
        apply(conn, topic, 0, offset, event)


def test_lifecycle_moves_the_job_forward(conn: sqlite3.Connection) -> None:
    fold_all(conn, started(), progress(epoch=1), progress(t=4, epoch=2))
    apply(conn, "sparktrainer.jobs.validated", 0, 0, validated())  # arrives late: another topic
    job = get_job(conn, "j1")
    assert job is not None
    assert job["status"] == "running"
    assert job["progress"]["epoch"] == 2 and job["progress"]["loss"] == 0.5
    assert job["warnings"] == ["w"] and job["name"] == "mlp" and job["type"] == "train"


def test_the_job_row_is_the_same_whichever_topic_is_folded_first() -> None:
    """A rebuild folds the validated and lifecycle topics in another order than the live fold."""
    rows = []
    for validated_first in (True, False):
        conn = store.connect(":memory:")
        if validated_first:
            apply(conn, "sparktrainer.jobs.validated", 0, 0, validated())
        fold_all(conn, started(), progress())
        if not validated_first:
            apply(conn, "sparktrainer.jobs.validated", 0, 0, validated())
        rows.append(get_job(conn, "j1"))
    assert rows[0] == rows[1]
    assert rows[0] is not None and rows[0]["created_at"] == iso(at(1))


def test_event_at_or_below_stored_offset_is_skipped(conn: sqlite3.Connection) -> None:
    assert apply(conn, LC, 0, 5, started())
    assert apply(conn, LC, 0, 6, progress(epoch=1))
    assert not apply(conn, LC, 0, 6, progress(epoch=1))
    assert not apply(conn, LC, 0, 2, progress(t=9, epoch=3))  # an old record replayed
    assert get_job(conn, "j1")["progress"]["epoch"] == 1  # type: ignore[index]
    assert db.stored_offsets(conn) == {(LC, 0): 7}
    assert apply(conn, LC, 1, 0, progress(job_id="j2"))  # partitions are independent


def test_offset_and_rows_commit_together(conn: sqlite3.Connection, monkeypatch) -> None:
    apply(conn, LC, 0, 0, started())

    def boom(*_: Any) -> None:
        raise RuntimeError("crash mid-fold")

    monkeypatch.setitem(job_folds.JOB_FOLDS, JobProgress, boom)
    with pytest.raises(RuntimeError):
        apply(conn, LC, 0, 1, progress(epoch=2))
    assert db.stored_offsets(conn) == {(LC, 0): 1}  # the offset did not move either
    monkeypatch.undo()
    assert apply(conn, LC, 0, 1, progress(epoch=2))  # redelivered after the crash: applied once
    assert get_job(conn, "j1")["progress"]["epoch"] == 2  # type: ignore[index]


def test_batch_is_one_transaction(conn: sqlite3.Connection) -> None:
    batch = [Folded(LC, 0, 0, started()), Folded(LC, 0, 1, "not an event")]
    batch.append(Folded(LC, 0, 2, object()))
    assert apply_many(conn, batch) == 3  # unknown objects only move the offset
    assert apply_many(conn, batch) == 0
    assert db.stored_offsets(conn) == {(LC, 0): 3}


def test_unreadable_record_only_moves_the_offset(conn: sqlite3.Connection) -> None:
    assert apply(conn, LC, 0, 0, None)
    assert list_jobs(conn).total == 0
    assert db.stored_offsets(conn) == {(LC, 0): 1}


@pytest.mark.parametrize(
    "end",
    [
        JobCompleted(job_id="j1", model_id="j1", metrics={"accuracy": 0.9}, at=at(5)),
        JobFailed(job_id="j1", reason="NaN loss", error_type="TrainingError", at=at(5)),
        JobCancelled(job_id="j1", at=at(5)),
    ],
)
def test_terminal_status_is_not_overwritten_by_late_events(conn: sqlite3.Connection, end) -> None:
    fold_all(conn, started(), progress(epoch=1), end, progress(t=6, epoch=3), started(t=7))
    apply(conn, "sparktrainer.jobs.validated", 0, 0, validated(t=8))
    job = get_job(conn, "j1")
    assert job is not None
    assert job["status"] == end.status
    assert job["progress"]["epoch"] == 1


def test_first_terminal_event_wins_and_late_cancel_is_a_no_op(conn: sqlite3.Connection) -> None:
    done = JobCompleted(job_id="j1", model_id="j1", metrics={"accuracy": 0.9}, at=at(5))
    late = JobCancelled(job_id="j1", at=at(6), already_ended="completed")
    fold_all(
        conn, started(), done, late, JobFailed(job_id="j1", reason="x", error_type="E", at=at(7))
    )
    job = get_job(conn, "j1")
    assert job is not None
    assert (job["status"], job["model_id"], job["metrics"]) == (
        "completed",
        "j1",
        {"accuracy": 0.9},
    )


def test_a_new_attempt_reopens_a_failed_job(conn: sqlite3.Connection) -> None:
    failed = JobFailed(job_id="j1", reason="lost", error_type="E", retriable=True, at=at(5))
    fold_all(conn, started(), failed, started(t=6, attempt=2), progress(t=7, epoch=2, attempt=2))
    job = get_job(conn, "j1")
    assert job is not None
    assert (job["status"], job["attempt"], job["progress"]["epoch"]) == ("running", 2, 2)
    apply(conn, LC, 0, 4, progress(t=8, epoch=3, attempt=1))  # the old owner's last words
    assert get_job(conn, "j1")["progress"]["epoch"] == 2  # type: ignore[index]


def test_rejection_then_redriven_validation(conn: sqlite3.Connection) -> None:
    rejected = JobRejected(job_id="j1", errors=["epochs must be > 0"], rejected_at=at(1))
    apply(conn, "sparktrainer.jobs.rejected", 0, 0, rejected)
    assert get_job(conn, "j1")["errors"] == ["epochs must be > 0"]  # type: ignore[index]
    apply(conn, "sparktrainer.jobs.validated", 0, 0, validated(t=9))
    job = get_job(conn, "j1")
    assert job is not None and (job["status"], job["errors"]) == ("validated", [])
    # The older rejection read again (another topic, e.g. after a rebuild) does not win.
    apply(conn, "sparktrainer.jobs.rejected", 0, 1, rejected)
    assert get_job(conn, "j1")["status"] == "validated"  # type: ignore[index]


def test_submission_creates_and_never_downgrades(conn: sqlite3.Connection) -> None:
    sub = Submission("j1", "mlp", "train", "pytorch", at(0))
    apply(conn, "sparktrainer.jobs.submitted", 0, 0, sub)
    assert get_job(conn, "j1")["status"] == "submitted"  # type: ignore[index]
    apply(conn, LC, 0, 0, started())
    apply(conn, "sparktrainer.jobs.submitted", 0, 1, Submission("j1", None, None, None, at(9)))
    job = get_job(conn, "j1")
    assert job is not None and (job["status"], job["created_at"]) == (
        "running",
        iso(at(0)),
    )


def test_submission_id_matches_the_validators_rule() -> None:
    bare = job_folds.submission_of(Received("t", 0, 7, None, b'{"type": "train"}', [], 0), 1000)
    keyed = job_folds.submission_of(Received("t", 0, 7, b"k-1", b'{"type": "train"}', [], 0), 1000)
    named = job_folds.submission_of(Received("t", 0, 7, b"k-1", b'{"job_id": "j-9"}', [], 0), 1000)
    assert bare is not None and bare.job_id.startswith("job-")
    assert keyed is not None and keyed.job_id == "k-1"
    assert named is not None and named.job_id == "j-9"
    assert job_folds.submission_of(Received("t", 0, 7, None, b"{nope", [], 0), 1000) is None
    for ts in (2**62, -(2**62)):  # any int64 a producer sets: no year out of range
        far = job_folds.submission_of(Received("t", 0, 7, None, b"{}", [], ts), 1000)
        assert far is not None and far.at.year == 1970
    assert (
        job_folds.submission_of(Received("t", 0, 7, None, b"{}" + b" " * 2000, [], 0), 1000) is None
    )


def test_registration_is_an_upsert(conn: sqlite3.Connection) -> None:
    topic = "sparktrainer.models.registered"
    m1, m2 = registered("m1", tags=["a"]), registered("m2")
    fold_all(conn, m1, m2, topic=topic)
    before = list_models(conn)
    # The same registrations replayed at new offsets (a replay appends to the log).
    apply(conn, topic, 0, 2, m1)
    apply(conn, topic, 0, 3, m2)
    assert list_models(conn) == before
    apply(conn, topic, 0, 4, registered("m1", tags=["b"], metrics={"accuracy": 0.5}))
    assert list_models(conn, tag="a").total == 0
    m1 = get_model(conn, "m1")
    assert m1 is not None and m1["tags"] == ["b"] and m1["metrics"] == {"accuracy": 0.5}
    assert list_models(conn).total == 2


def test_registration_links_the_job(conn: sqlite3.Connection) -> None:
    apply(conn, LC, 0, 0, started(job_id="m1"))
    apply(conn, "sparktrainer.models.registered", 0, 0, registered("m1"))
    assert get_job(conn, "m1")["model_id"] == "m1"  # type: ignore[index]


def test_wipe_forgets_rows_and_offsets(conn: sqlite3.Connection) -> None:
    fold_all(conn, started(), registered("m1"))
    db.wipe(conn)
    assert list_models(conn).total == 0 and list_jobs(conn).total == 0
    assert db.stored_offsets(conn) == {}


def test_a_record_whose_fold_fails_is_rolled_back_alone_and_the_partition_goes_on(conn) -> None:
    """An attempt SQLite cannot hold (above 2**63): that record only moves the offset on."""
    huge = JobProgress(job_id="j9", attempt=2**70, epoch=1, total_epochs=2, step=1,
                       total_steps=2, at=at(3))  # fmt: skip
    batch = [
        Folded(LC, 0, 0, validated("j9")),
        Folded(LC, 0, 1, huge),
        Folded(LC, 0, 2, started("j9")),
    ]
    with pytest.raises(OverflowError):
        apply_many(conn, batch)  # without a handler the batch fails whole
    assert get_job(conn, "j9") is None and db.next_offset(conn, LC, 0) is None
    refused: list[tuple[int, str]] = []
    applied = apply_many(
        conn, batch, on_error=lambda r, e: refused.append((r.offset, type(e).__name__))
    )
    assert applied == 2 and refused == [(1, "OverflowError")]
    row = get_job(conn, "j9")
    assert row is not None and row["status"] == "running" and row["attempt"] == 1
    assert db.next_offset(conn, LC, 0) == 3


def test_a_batch_over_two_partitions_folds_only_what_each_has_not(conn) -> None:
    """The batch path reads each partition's offset once and stores it once, at its end."""
    apply_many(conn, [Folded(LC, 0, 0, validated("a")), Folded(LC, 0, 1, started("a"))])
    batch = [
        Folded(LC, 0, 1, started("a")),  # folded already: skipped
        Folded(LC, 1, 5, validated("b")),
        Folded(LC, 0, 2, validated("c")),
        Folded(LC, 1, 5, validated("b")),  # the same record twice in one fetch: once
        Folded(LC, 1, 6, started("b")),
    ]
    assert apply_many(conn, batch) == 3
    assert db.stored_offsets(conn) == {(LC, 0): 3, (LC, 1): 7}
    row = get_job(conn, "b")
    assert row is not None and row["status"] == "running"
    assert apply_many(conn, batch) == 0
