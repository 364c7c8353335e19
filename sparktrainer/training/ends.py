"""A job's terminal events: built, recorded in S3 before they are announced, replayed from there.

``jobs/{id}/outcome.json`` (``storage/outcomes.py``) holds the events that ended a job; a
redelivered job re-announces them instead of training again, and a cancel for a job that had
already ended is answered from them.
"""

from __future__ import annotations

import asyncio
import json

import structlog
from pydantic import BaseModel

from sparktrainer.contracts.envelope import OutRecord, encode
from sparktrainer.contracts.events import (
    EVENT_TYPES,
    CancelRequested,
    JobCancelled,
    JobFailed,
    JobValidated,
    LifecycleEvent,
)
from sparktrainer.contracts.failures import FailureReason
from sparktrainer.storage.layout import checkpoint_prefix
from sparktrainer.storage.outcomes import StoredOutcome, claimed_by, read_outcome, write_outcome
from sparktrainer.storage.s3 import ObjectStore

log = structlog.get_logger(__name__)
SOURCE = "sparktrainer/trainer"


def records_of(events: list[BaseModel]) -> list[OutRecord]:
    return [encode(e, SOURCE) for e in events]


def stored_events(events: list[BaseModel]) -> list[dict[str, object]]:
    return [{"ce_type": type(e).ce_type, "data": json.loads(e.model_dump_json())} for e in events]  # type: ignore[attr-defined]


def replay_outcome(outcome: StoredOutcome) -> list[OutRecord]:
    """The terminal events of a job that already ended, exactly as first sent."""
    events = [EVENT_TYPES[e["ce_type"]].model_validate(e["data"]) for e in outcome.events]  # type: ignore[index]
    return records_of(events)


def refused_job(job: JobValidated, reasons: list[str]) -> JobFailed:
    """The end of a job this trainer will not run (why: ``reasons``)."""
    return JobFailed(
        job_id=job.job_id,
        reason="the trainer refused the job before building anything: " + "; ".join(reasons),
        error_type="InvalidJobError",
        cause=FailureReason.CONFIG,
    )


def exhausted_job(job: JobValidated, starts: int, max_attempts: int) -> JobFailed:
    """The end of a job started ``starts`` times that never ended."""
    return JobFailed(
        job_id=job.job_id,
        attempt=max(1, starts),
        reason=f"the job was started {starts} times and never ended (its trainer or worker died "
        f"each time); it is not started again (SPARKTRAINER_JOB_MAX_ATTEMPTS={max_attempts})",
        error_type="AttemptsExhausted",
        cause=FailureReason.ATTEMPTS_EXHAUSTED,
    )


async def finish(store: ObjectStore, job_id: str, events: list[BaseModel]) -> list[OutRecord]:
    """Record the job's end in S3 (``store``: the attempt's fenced one), drop its checkpoints,
    and return the lifecycle records that announce it."""
    status = next(e.status for e in events if isinstance(e, LifecycleEvent))  # type: ignore[attr-defined]
    await asyncio.to_thread(
        write_outcome, store, job_id, StoredOutcome(status, stored_events(events))
    )
    await asyncio.to_thread(store.delete_prefix, checkpoint_prefix(job_id))
    log.info("job_ended", status=status)
    return records_of([e for e in events if isinstance(e, LifecycleEvent)])


async def answer_cancel(cancel: CancelRequested, store: ObjectStore) -> list[OutRecord]:
    """A cancel for a job that already ended is answered here (the runner answers the rest)."""
    ended = await asyncio.to_thread(read_outcome, store, cancel.job_id)
    if ended is None:
        return []
    owner = await asyncio.to_thread(claimed_by, store, cancel.job_id)
    if owner is not None and owner.tenant != cancel.tenant:
        return []  # another tenant's job: not this asker's to hear about
    return records_of(
        [
            JobCancelled(
                job_id=cancel.job_id,
                reason=f"job had already ended as {ended.status}",
                already_ended=ended.status,
            )
        ]
    )
