"""One validated job, from pick-up to its single terminal event (the trainer's plain logic).

Kafka-free: the trainer consumer hands it a decoded job and a ``send`` callable. Every job
that starts ends as completed, failed or cancelled, recorded in S3 before it is announced,
so a redelivery re-announces the same end instead of training twice.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
from collections import OrderedDict
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta

import structlog
from pydantic import BaseModel

from sparktrainer.contracts.envelope import OutRecord, encode
from sparktrainer.contracts.events import (
    EVENT_TYPES,
    CancelRequested,
    JobCancelled,
    JobCompleted,
    JobFailed,
    JobPreempted,
    JobValidated,
    LifecycleEvent,
    ModelRegistered,
    now,
)
from sparktrainer.contracts.failures import FailureReason
from sparktrainer.contracts.usage import AttemptUsage
from sparktrainer.errors import HandedBack, Requeued
from sparktrainer.storage.layout import checkpoint_prefix
from sparktrainer.storage.outcomes import (
    StoredOutcome,
    claimed_by,
    handovers,
    next_attempt,
    note_handover,
    read_outcome,
    release_attempt,
    write_outcome,
)
from sparktrainer.storage.s3 import ObjectStore
from sparktrainer.training.worker.clock import AttemptClock
from sparktrainer.training.worker.joblogs import AttemptLog
from sparktrainer.training.worker.protocol import Outcome
from sparktrainer.training.worker.warm import WarmWorker

log = structlog.get_logger(__name__)
SOURCE = "sparktrainer/trainer"
Send = Callable[[OutRecord], Awaitable[None]]
Admit = Callable[[JobValidated], Awaitable[list[str]]]  # why this trainer will not run a job


def submitted_at(job: JobValidated) -> datetime:
    """When the job was submitted: its record's time on jobs.submitted, else its validation."""
    if job.source is not None and job.source.timestamp_ms is not None:
        try:
            return datetime.fromtimestamp(job.source.timestamp_ms / 1000, UTC)
        except (OverflowError, ValueError, OSError):
            pass  # a timestamp no calendar holds: the validation time is the better guess
    return job.validated_at  # an Instant: aware, UTC


@dataclass
class CancelBook:
    """Cancel requests seen on jobs.control, and the job this trainer is running now.

    A cancel is honoured only for a job submitted before it was requested (a cancel for an id
    nobody used yet does not stop the job that takes the id later), and only when it asks for
    the job's own tenant (another tenant's is ignored and counted in ``foreign``). Cancels are
    kept for ``ttl_s`` after they were requested and at most ``max_entries`` of them.
    """

    requests: OrderedDict[str, CancelRequested] = field(default_factory=OrderedDict)
    running: JobValidated | None = None
    giving_way: str | None = None  # why the running job gives way to a higher priority one
    worker: WarmWorker | None = None
    max_entries: int = 10_000
    ttl_s: float = 7 * 24 * 3600.0
    foreign: set[str] = field(default_factory=set)  # ids of cancels of another tenant's job

    def request(self, cancel: CancelRequested) -> None:
        """Remember a cancel; stop the running job if it is the one."""
        self.requests[cancel.job_id] = cancel
        self.requests.move_to_end(cancel.job_id)
        self._trim()
        job = self.running
        if job is not None and self.for_job(job) is not None and self.worker is not None:
            self.worker.cancel(cancel.job_id, cancel.reason)

    def give_way(self, job_id: str, reason: str) -> bool:
        """Preempt the running job for a higher priority one: it checkpoints, is announced
        preempted and waits again on this trainer (``Requeued``). False: it is not running."""
        job = self.running
        if job is None or job.job_id != job_id or self.worker is None or self.giving_way:
            return False
        self.giving_way = reason if self.worker.give_way(job_id, reason) else None
        return self.giving_way is not None

    def for_job(self, job: JobValidated) -> CancelRequested | None:
        """The cancel that applies to ``job``, if one was requested after it was submitted."""
        cancel = self.requests.get(job.job_id)
        if cancel is None or cancel.requested_at < submitted_at(job):
            return None
        if cancel.tenant != job.tenant:
            if cancel.event_id() not in self.foreign:
                self.foreign.add(cancel.event_id())
                log.warning("cancel_ignored", job_id=job.job_id, tenant=job.tenant,
                            asked_by=cancel.tenant)  # fmt: skip
            return None
        return cancel

    def _trim(self) -> None:
        oldest = now() - timedelta(seconds=self.ttl_s)
        while len(self.requests) > self.max_entries:
            self.requests.popitem(last=False)
        for job_id in [j for j, c in self.requests.items() if c.requested_at < oldest]:
            del self.requests[job_id]


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
    admit: Admit | None = None,
) -> list[OutRecord]:
    """Train one job; returns its terminal records, already recorded in S3.

    ``admit`` says why this trainer refuses the job (the job then fails before anything is
    built). Every start is counted first: the start past ``max_attempts`` (a job whose trainer
    died each time) ends the job failed instead. A retriable failure (the worker died:
    OOM-killed, segfault) is tried again, resuming from the last checkpoint, within the same
    count.
    """
    structlog.contextvars.bind_contextvars(job_id=job.job_id)
    ended = await asyncio.to_thread(read_outcome, store, job.job_id)
    if ended is not None:
        log.info("job_already_ended", status=ended.status)
        return replay_outcome(ended)
    refused = await admit(job) if admit is not None else []
    if refused:
        return await _finish(store, job.job_id, [_refused(job, refused)])
    attempt = await asyncio.to_thread(next_attempt, store, job.job_id)
    limit = max_attempts + await asyncio.to_thread(handovers, store, job.job_id)
    if attempt > limit:
        return await _finish(store, job.job_id, [_exhausted(job, attempt - 1, max_attempts)])
    cancel = cancels.for_job(job)
    if cancel is not None:
        return await _finish(
            store,
            job.job_id,
            [
                JobCancelled(
                    job_id=job.job_id,
                    attempt=attempt,
                    reason=cancel.reason,
                    cause=FailureReason.CANCELLED,
                )
            ],
        )
    cancels.running = job
    try:
        attempt, outcome, used = await _train(job, attempt, worker, store, send, limit)
    finally:
        cancels.running, gave_way, cancels.giving_way = None, cancels.giving_way, None
    if outcome.status == "preempted":
        await _hand_back(job, attempt, outcome, store, send, used, requeue=gave_way is not None)
    return await _conclude(job, attempt, outcome, store, send, used)


async def _hand_back(
    job: JobValidated,
    attempt: int,
    outcome: Outcome,
    store: ObjectStore,
    send: Send,
    used: list[AttemptUsage],
    *,
    requeue: bool = False,
) -> None:
    """A preempted attempt is no end: announce it, keep it out of the attempt limit and give
    the record back undone (raises HandedBack: the next owner resumes from its checkpoint; or
    ``Requeued`` when it gave way to a higher priority: it waits again on this trainer)."""
    await asyncio.to_thread(note_handover, store, job.job_id)
    step = outcome.checkpoint_step
    reason = outcome.reason or "the trainer stopped"
    preempted = JobPreempted(
        job_id=job.job_id, attempt=attempt, reason=reason, step=step, usage=used
    )
    await send(encode(preempted, SOURCE))
    log.info("job_preempted", attempt=attempt, step=step, requeued=requeue)
    stopped = f"job {job.job_id} preempted at attempt {attempt}: {reason}"
    raise Requeued(stopped) if requeue else HandedBack(stopped)


def _refused(job: JobValidated, reasons: list[str]) -> JobFailed:
    return JobFailed(
        job_id=job.job_id,
        reason="the trainer refused the job before building anything: " + "; ".join(reasons),
        error_type="InvalidJobError",
        cause=FailureReason.CONFIG,
    )


def _exhausted(job: JobValidated, starts: int, max_attempts: int) -> JobFailed:
    return JobFailed(
        job_id=job.job_id,
        attempt=max(1, starts),
        reason=f"the job was started {starts} times and never ended (its trainer or worker died "
        f"each time); it is not started again (SPARKTRAINER_JOB_MAX_ATTEMPTS={max_attempts})",
        error_type="AttemptsExhausted",
        cause=FailureReason.ATTEMPTS_EXHAUSTED,
    )


async def _train(
    job: JobValidated,
    attempt: int,
    worker: WarmWorker,
    store: ObjectStore,
    send: Send,
    max_attempts: int,
) -> tuple[int, Outcome, list[AttemptUsage]]:
    """Run the job, again after a retriable failure; the last attempt, its outcome, and what
    each attempt used."""

    async def forward(event: BaseModel) -> None:
        await send(encode(event, SOURCE))

    used: list[AttemptUsage] = []
    while True:
        outcome, usage = await _run_guarded(worker, job, attempt, forward, store)
        used.append(usage)
        if not (outcome.status == "failed" and outcome.retriable and attempt < max_attempts):
            return attempt, outcome, used
        log.warning("job_retry", attempt=attempt, reason=outcome.reason)
        attempt = await asyncio.to_thread(next_attempt, store, job.job_id)


async def _run_guarded(
    worker: WarmWorker,
    job: JobValidated,
    attempt: int,
    forward: Callable[[BaseModel], Awaitable[None]],
    store: ObjectStore,
) -> tuple[Outcome, AttemptUsage]:
    """Run in the worker; if this task is cancelled (rebalance, shutdown) stop the job quietly.

    A start handed back this way is not the job's fault: it is given back to the attempt count
    (a trainer killed outright cannot, and that start counts). The attempt's log is uploaded
    as it goes and once more at its end, before its end is announced. The trainer's clock
    measures what the attempt used (``training/worker/clock.py``).
    """
    attempt_log = AttemptLog(worker.logs, store, job.job_id, attempt)
    gpus = worker.capacity.gpus_held(job.config) if worker.capacity is not None else 0
    clock = AttemptClock(lambda: worker.pid, gpus)

    async def seen(event: BaseModel) -> None:
        clock.sample()
        await forward(event)
        await attempt_log.saw(event)

    task = asyncio.ensure_future(worker.run(job, attempt, seen))
    try:
        with clock.sampling():
            outcome = await asyncio.shield(task)
        usage = clock.usage(attempt)
    except asyncio.CancelledError:
        worker.cancel(
            job.job_id, "trainer lost the job (rebalance or shutdown); resuming elsewhere"
        )
        try:
            await asyncio.wait_for(task, timeout=30)
        except (TimeoutError, Exception):
            log.warning("job_abort_slow", job_id=job.job_id)
        with contextlib.suppress(Exception):  # S3 down at shutdown: the start stays counted
            await asyncio.wait_for(
                asyncio.to_thread(release_attempt, store, job.job_id, attempt), 10
            )
        with contextlib.suppress(Exception):
            await asyncio.wait_for(attempt_log.ended(), 10)
        raise
    await attempt_log.ended()
    return outcome, usage


async def _conclude(
    job: JobValidated,
    attempt: int,
    outcome: Outcome,
    store: ObjectStore,
    send: Send,
    used: list[AttemptUsage],
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
                usage=used,
            ),
        ]
    elif outcome.status == "cancelled":
        terminal = [
            JobCancelled(
                job_id=job.job_id,
                attempt=attempt,
                reason=outcome.reason or "cancel requested",
                cause=outcome.cause or FailureReason.CANCELLED,
                usage=used,
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
                cause=outcome.cause or FailureReason.INTERNAL,
                signal=outcome.signal,
                usage=used,
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
    owner = await asyncio.to_thread(claimed_by, store, cancel.job_id)
    if owner is not None and owner.tenant != cancel.tenant:
        return []  # another tenant's job: not this asker's to hear about
    return _records(
        [
            JobCancelled(
                job_id=cancel.job_id,
                reason=f"job had already ended as {ended.status}",
                already_ended=ended.status,
            )
        ]
    )
