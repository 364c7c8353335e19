"""The jobs concern's pure folds: (the job's row, an event) -> the new row, or None for "no change".

Events of different topics are not ordered against each other, so a job's status only moves
forward (submitted -> validated/rejected -> running -> terminal); a terminal status is final
unless a later attempt of the same job starts again. Nothing here touches the database.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from sparktrainer.contracts.envelope import EnvelopeError, unwrap
from sparktrainer.contracts.events import (
    TERMINAL_STATUSES,
    CheckpointSaved,
    JobCancelled,
    JobCompleted,
    JobFailed,
    JobPreempted,
    JobProgress,
    JobRejected,
    JobStarted,
    JobValidated,
)
from sparktrainer.contracts.jobspec import SWEEP_TYPE
from sparktrainer.contracts.records import Received, job_id_for
from sparktrainer.contracts.schedule_events import SweepValidated
from sparktrainer.registry.rows import Row, iso

STATUS_RANK = {
    "submitted": 0,
    "validated": 1,
    "rejected": 1,
    "running": 2,
    "completed": 3,
    "failed": 3,
    "cancelled": 3,
}


@dataclass(frozen=True)
class Submission:
    """What the read model keeps of a record on jobs.submitted (the validator judges the rest)."""

    job_id: str
    name: str | None
    type: str | None
    framework: str | None
    at: datetime


def submission_of(rec: Received, max_bytes: int) -> Submission | None:
    """The submission in a raw record, under the job id the validator will give it.

    None for records the validator rejects before reading them (unreadable, oversized): their
    rejected event creates the job row instead.
    """
    if rec.value is None or len(rec.value) > max_bytes:
        return None
    try:
        _, body = unwrap(rec.value, rec.headers)
    except EnvelopeError:
        return None
    job_id, _ = job_id_for(rec, body)  # the validator's own id rule, not a copy
    fields = body if isinstance(body, dict) else {}

    def text(name: str) -> str | None:
        v = fields.get(name)
        return v[:256] if isinstance(v, str) else None

    try:
        at = datetime.fromtimestamp((rec.timestamp_ms or 0) / 1000, UTC)
    except (OverflowError, ValueError, OSError):  # a producer may set any int64 timestamp
        at = datetime.fromtimestamp(0, UTC)
    return Submission(job_id, text("name"), text("type"), text("framework"), at)


def _new_job(job_id: str, at: str) -> Row:
    return {
        "job_id": job_id,
        "name": None,
        "framework": None,
        "type": None,
        "config_kind": None,
        "status": "submitted",
        "status_at": at,
        "errors": [],
        "warnings": [],
        "progress": None,
        "checkpoint": None,
        "metrics": None,
        "model_id": None,
        "reason": None,
        "cause": None,
        "retriable": None,
        "signal": None,
        "device": None,
        "worker": None,
        "attempt": 1,
        "created_at": at,
        "updated_at": at,
        "tenant": None,  # the verdict's: the tenant its door established
    }


def may_move(row: Row, status: str, at: str, attempt: int) -> bool:
    """Whether an event may set ``status`` on a job that is ``row['status']`` now."""
    current = row["status"]
    if current in TERMINAL_STATUSES:  # final, unless a new attempt of the job starts over
        return attempt > row["attempt"] and STATUS_RANK[status] >= STATUS_RANK["running"]
    if STATUS_RANK[status] != STATUS_RANK[current]:
        return STATUS_RANK[status] > STATUS_RANK[current]
    # validated vs rejected: a re-driven submission's later verdict wins
    return status != current and at >= row["status_at"]


def _move(row: Row, status: str, at: str, attempt: int = 1) -> bool:
    if not may_move(row, status, at, attempt):
        return False
    row["status"], row["status_at"] = status, at
    row["attempt"] = max(row["attempt"], attempt)
    return True


def _fill(row: Row, **values: Any) -> None:
    for name, value in values.items():
        if value is not None and row.get(name) is None:
            row[name] = value


def fold_submission(row: Row | None, ev: Submission) -> Row | None:
    """A submission only creates a job; anything later already says more."""
    at = iso(ev.at)
    new = dict(row) if row else _new_job(ev.job_id, at)
    _fill(new, name=ev.name, type=ev.type, framework=ev.framework)
    new["created_at"] = min(new["created_at"], at)
    return new if new != row else None


def _accepted(
    row: Row | None, job_id: str, at: str, warnings: list[str], tenant: str, **fields: Any
) -> Row | None:
    """A positive verdict: clears the errors of an earlier rejection, fills what was unknown."""
    new = dict(row) if row else _new_job(job_id, at)
    if _move(new, "validated", at) or row is None:
        new["status"], new["errors"], new["warnings"] = "validated", [], list(warnings)
    elif STATUS_RANK[new["status"]] > STATUS_RANK["validated"] and not new["warnings"]:
        new["warnings"] = list(warnings)  # the verdict folded after the job moved on
    _fill(new, **fields)
    new["tenant"] = tenant  # the verdict's word on the id's owner stands over a raw guess
    return _touched(new, row, at)


def fold_validated(row: Row | None, ev: JobValidated) -> Row | None:
    """Validated: name, type and warnings; clears the errors of an earlier rejection."""
    return _accepted(
        row, ev.job_id, iso(ev.validated_at), ev.warnings, ev.tenant,
        name=ev.name, type=ev.type, framework=ev.framework, config_kind=ev.config_kind,
    )  # fmt: skip


def fold_sweep_validated(row: Row | None, ev: SweepValidated) -> Row | None:
    """A validated sweep is a job too: its controller's lifecycle events move it on."""
    return _accepted(
        row, ev.sweep_id, iso(ev.validated_at), ev.warnings, ev.tenant,
        name=ev.name, type=SWEEP_TYPE, framework=ev.framework, config_kind=SWEEP_TYPE,
    )  # fmt: skip


def fold_rejected(row: Row | None, ev: JobRejected) -> Row | None:
    """Rejected: every error, unless the job has already moved past validation."""
    at = iso(ev.rejected_at)
    new = dict(row) if row else _new_job(ev.job_id, at)
    if _move(new, "rejected", at) or row is None:
        new["status"], new["errors"], new["warnings"] = (
            "rejected",
            list(ev.errors),
            list(ev.warnings),
        )
    _fill(new, name=ev.name, tenant=ev.tenant)
    return _touched(new, row, at)


def fold_started(row: Row | None, ev: JobStarted) -> Row | None:
    """Started (or resumed by a new owner): running on a device."""
    at = iso(ev.at)
    new = dict(row) if row else _new_job(ev.job_id, at)
    moved = _move(new, "running", at, ev.attempt)
    takeover = new["status"] == "running" and ev.attempt >= new["attempt"]
    if not (moved or takeover):
        return None
    new.update(device=ev.device, worker=ev.worker, attempt=max(new["attempt"], ev.attempt))
    _fill(new, name=ev.name, framework=ev.framework, config_kind=ev.config_kind)
    if new["progress"] is None:
        new["progress"] = {"epoch": ev.resumed_from_epoch or 0, "total_epochs": ev.total_epochs}
    return _touched(new, row, at)


def fold_progress(row: Row | None, ev: JobProgress) -> Row | None:
    """Progress: the latest numbers; late progress never reopens an ended job."""
    at = iso(ev.at)
    if row is not None and ev.attempt < row["attempt"]:
        return None  # a previous owner's last words
    new = dict(row) if row else _new_job(ev.job_id, at)
    if new["status"] != "running" and not _move(new, "running", at, ev.attempt):
        return None  # ended (terminal), and this is not a new attempt
    new["attempt"] = max(new["attempt"], ev.attempt)
    new["progress"] = ev.model_dump(mode="json", exclude={"job_id", "attempt"})
    return _touched(new, row, at)


def fold_checkpoint(row: Row | None, ev: CheckpointSaved) -> Row | None:
    """Checkpoint saved: where the job would resume from."""
    at = iso(ev.at)
    new = dict(row) if row else _new_job(ev.job_id, at)
    if row is None:
        new["status"] = "running"
    new["checkpoint"] = {
        "epoch": ev.epoch,
        "step": ev.step,
        "key": ev.key,
        "size_bytes": ev.size_bytes,
    }
    return _touched(new, row, at)


def fold_preempted(row: Row | None, ev: JobPreempted) -> Row | None:
    """Preempted: still the job's run (the next owner resumes it); the reason says where."""
    at = iso(ev.at)
    if row is not None and (ev.attempt < row["attempt"] or row["status"] in TERMINAL_STATUSES):
        return None  # a previous owner's, or the job ended since
    new = dict(row) if row else _new_job(ev.job_id, at)
    if row is None:
        new["status"] = "running"
    new["attempt"] = max(new["attempt"], ev.attempt)
    where = f"at step {ev.step}" if ev.step is not None else "without a checkpoint of its own"
    new["reason"] = f"preempted {where}: {ev.reason}"
    return _touched(new, row, at)


def _ended(status: str) -> Callable[[Row | None, Any], Row | None]:
    def fold(row: Row | None, ev: Any) -> Row | None:
        at = iso(ev.at)
        new = dict(row) if row else _new_job(ev.job_id, at)
        if isinstance(ev, JobCancelled) and ev.already_ended:
            return None  # a cancel that came after the end changes nothing
        if not _move(new, status, at, ev.attempt) and row is not None:
            return None
        new["status"], new["status_at"] = status, at
        if isinstance(ev, JobCompleted):
            new.update(model_id=ev.model_id, metrics=dict(ev.metrics), reason=None, cause=None)
            return _touched(new, row, at)
        new.update(cause=ev.cause.value if ev.cause else None, retriable=int(ev.retriable))
        if isinstance(ev, JobFailed):
            new["reason"] = f"{ev.error_type}: {ev.reason}" if ev.error_type else ev.reason
            new["signal"] = ev.signal
        else:
            new["reason"] = ev.reason
        return _touched(new, row, at)

    fold.__doc__ = f"The job ended: {status}."
    return fold


def _touched(new: Row, row: Row | None, at: str) -> Row | None:
    # The earliest event seen, whatever order the topics were folded in (a rebuild folds
    # the validated topic and the lifecycle topic in another order than the live fold did).
    new["created_at"] = min(new["created_at"], at)
    if new == row:
        return None
    new["updated_at"] = max(new["updated_at"], at)
    return new


JOB_FOLDS: dict[type, Callable[[Row | None, Any], Row | None]] = {
    Submission: fold_submission,
    JobValidated: fold_validated,
    SweepValidated: fold_sweep_validated,
    JobRejected: fold_rejected,
    JobStarted: fold_started,
    JobProgress: fold_progress,
    CheckpointSaved: fold_checkpoint,
    JobCompleted: _ended("completed"),
    JobFailed: _ended("failed"),
    JobCancelled: _ended("cancelled"),
    JobPreempted: fold_preempted,
}
