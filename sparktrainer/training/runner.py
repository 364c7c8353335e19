"""One validated job, from pick-up to its single terminal event (the trainer's plain logic).

Kafka-free: the trainer consumer hands it a decoded job and a ``send`` callable. Every job
that starts ends as completed, failed or cancelled, recorded in S3 before it is announced,
so a redelivery re-announces the same end instead of training twice.
"""

from __future__ import annotations

import asyncio
import json
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field

import structlog
from pydantic import BaseModel

from sparktrainer.contracts.envelope import OutRecord, encode
from sparktrainer.contracts.events import (
    EVENT_TYPES,
    CancelRequested,
    JobCancelled,
    JobCompleted,
    JobFailed,
    JobValidated,
    LifecycleEvent,
    ModelRegistered,
)
from sparktrainer.storage.layout import checkpoint_prefix
from sparktrainer.storage.outcomes import StoredOutcome, next_attempt, read_outcome, write_outcome
from sparktrainer.storage.s3 import ObjectStore
from sparktrainer.training.worker.protocol import Outcome
from sparktrainer.training.worker.warm import WarmWorker

log = structlog.get_logger(__name__)
SOURCE = "sparktrainer/trainer"
Send = Callable[[OutRecord], Awaitable[None]]


@dataclass
class CancelBook:
    """Cancel requests seen on jobs.control, and the job this trainer is running now."""

    requests: dict[str, CancelRequested] = field(default_factory=dict)
    running: str | None = None
    worker: WarmWorker | None = None

    def request(self, cancel: CancelRequested) -> None:
        """Remember a cancel; stop the running job if it is the one."""
        self.requests[cancel.job_id] = cancel
        if self.running == cancel.job_id and self.worker is not None:
            self.worker.cancel(cancel.job_id, cancel.reason)


def _records(events: list[BaseModel]) -> list[OutRecord]:
    return [encode(e, SOURCE) for e in events]


def _stored(events: list[BaseModel]) -> list[dict[str, object]]:
    return [{"ce_type": type(e).ce_type, "data": json.loads(e.model_dump_json())} for e in events]  # type: ignore[attr-defined]


def replay_outcome(outcome: StoredOutcome) -> list[OutRecord]:
    """The terminal events of a job that already ended, exactly as first sent."""
    events = [EVENT_TYPES[e["ce_type"]].model_validate(e["data"]) for e in outcome.events]  # type: ignore[index]
    return _records(events)


async def drive_job(
    job: JobValidated,
    *,
    worker: WarmWorker,
    store: ObjectStore,
    cancels: CancelBook,
    send: Send,
    max_attempts: int = 3,
) -> list[OutRecord]:
    """Train one job; returns its terminal records, already recorded in S3.

    A retriable failure (the worker died: OOM-killed, segfault) is tried again, resuming
    from the last checkpoint, up to ``max_attempts`` starts in all.
    """
    structlog.contextvars.bind_contextvars(job_id=job.job_id)
    ended = await asyncio.to_thread(read_outcome, store, job.job_id)
    if ended is not None:
        log.info("job_already_ended", status=ended.status)
        return replay_outcome(ended)
    attempt = await asyncio.to_thread(next_attempt, store, job.job_id)
    if job.job_id in cancels.requests:
        cancel = cancels.requests[job.job_id]
        return await _finish(
            store,
            job.job_id,
            [JobCancelled(job_id=job.job_id, attempt=attempt, reason=cancel.reason)],
        )
    cancels.running = job.job_id
    try:
        attempt, outcome = await _train(job, attempt, worker, store, send, max_attempts)
    finally:
        cancels.running = None
    return await _conclude(job, attempt, outcome, store, send)


async def _train(
    job: JobValidated,
    attempt: int,
    worker: WarmWorker,
    store: ObjectStore,
    send: Send,
    max_attempts: int,
) -> tuple[int, Outcome]:
    """Run the job, again after a retriable failure; the last attempt and its outcome."""

    async def forward(event: BaseModel) -> None:
        await send(encode(event, SOURCE))

    while True:
        outcome = await _run_guarded(worker, job, attempt, forward)
        if not (outcome.status == "failed" and outcome.retriable and attempt < max_attempts):
            return attempt, outcome
        log.warning("job_retry", attempt=attempt, reason=outcome.reason)
        attempt = await asyncio.to_thread(next_attempt, store, job.job_id)


async def _run_guarded(
    worker: WarmWorker,
    job: JobValidated,
    attempt: int,
    forward: Callable[[BaseModel], Awaitable[None]],
) -> Outcome:
    """Run in the worker; if this task is cancelled (rebalance, shutdown) stop the job quietly."""
    task = asyncio.ensure_future(worker.run(job, attempt, forward))
    try:
        return await asyncio.shield(task)
    except asyncio.CancelledError:
        worker.cancel(
            job.job_id, "trainer lost the job (rebalance or shutdown); resuming elsewhere"
        )
        try:
            await asyncio.wait_for(task, timeout=30)
        except (TimeoutError, Exception):
            log.warning("job_abort_slow", job_id=job.job_id)
        raise


async def _conclude(
    job: JobValidated, attempt: int, outcome: Outcome, store: ObjectStore, send: Send
) -> list[OutRecord]:
    terminal: list[BaseModel]
    if outcome.status == "completed" and outcome.registered is not None:
        reg: ModelRegistered = outcome.registered
        await send(encode(reg, SOURCE))  # registered before completed: the list is ready first
        terminal = [
            reg,
            JobCompleted(
                job_id=job.job_id,
                attempt=attempt,
                model_id=reg.model_id,
                metrics=reg.metrics,
                duration_s=outcome.duration_s,
            ),
        ]
    elif outcome.status == "cancelled":
        terminal = [
            JobCancelled(
                job_id=job.job_id, attempt=attempt, reason=outcome.reason or "cancel requested"
            )
        ]
    else:
        terminal = [
            JobFailed(
                job_id=job.job_id,
                attempt=attempt,
                reason=outcome.reason or "training failed",
                error_type=outcome.error_type or "TrainingError",
                retriable=outcome.retriable,
            )
        ]
    return await _finish(store, job.job_id, terminal)


async def _finish(store: ObjectStore, job_id: str, events: list[BaseModel]) -> list[OutRecord]:
    status = next(e.status for e in events if isinstance(e, LifecycleEvent))  # type: ignore[attr-defined]
    await asyncio.to_thread(write_outcome, store, job_id, StoredOutcome(status, _stored(events)))
    await asyncio.to_thread(store.delete_prefix, checkpoint_prefix(job_id))
    log.info("job_ended", status=status)
    return _records([e for e in events if isinstance(e, LifecycleEvent)])


async def answer_cancel(cancel: CancelRequested, store: ObjectStore) -> list[OutRecord]:
    """A cancel for a job that already ended is answered here (the runner answers the rest)."""
    ended = await asyncio.to_thread(read_outcome, store, cancel.job_id)
    if ended is None:
        return []
    return _records(
        [
            JobCancelled(
                job_id=cancel.job_id,
                reason=f"job had already ended as {ended.status}",
                already_ended=ended.status,
            )
        ]
    )
