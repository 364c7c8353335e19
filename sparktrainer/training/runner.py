"""One validated job, from pick-up to its single terminal event (the trainer's plain logic).

Kafka-free: the trainer consumer hands it a decoded job and a ``send`` callable. Every job
that starts ends as completed, failed or cancelled, recorded in S3 before it is announced,
so a redelivery re-announces the same end instead of training twice.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections import OrderedDict
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta

import structlog
from pydantic import BaseModel

from sparktrainer.contracts.envelope import OutRecord, encode
from sparktrainer.contracts.events import (
    CancelRequested,
    JobCancelled,
    JobCompleted,
    JobFailed,
    JobPreempted,
    JobValidated,
    ModelRegistered,
    now,
)
from sparktrainer.contracts.failures import FailureReason
from sparktrainer.contracts.usage import AttemptUsage
from sparktrainer.errors import FencedOff, HandedBack, Requeued, StorageError
from sparktrainer.storage.fencing import AttemptFence
from sparktrainer.storage.outcomes import hand_over, handovers, next_attempt, read_outcome
from sparktrainer.storage.s3 import ObjectStore
from sparktrainer.training.ends import (
    SOURCE,
    exhausted_job,
    finish,
    refused_job,
    replay_outcome,
)
from sparktrainer.training.worker.clock import AttemptClock
from sparktrainer.training.worker.joblogs import AttemptLog
from sparktrainer.training.worker.protocol import Outcome
from sparktrainer.training.worker.warm import WarmWorker

log = structlog.get_logger(__name__)
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
    # The attempt this trainer took last, kept until its record is done: a retry of the record
    # and the failure hook check its fence (storage/fencing.py) before anything else.
    taken: AttemptFence | None = None
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
    await still_owned(cancels, job.job_id)
    ended = await asyncio.to_thread(read_outcome, store, job.job_id)
    if ended is not None:
        log.info("job_already_ended", status=ended.status)
        return replay_outcome(ended)
    refused = await admit(job) if admit is not None else []
    if refused:
        return await finish(store, job.job_id, [refused_job(job, refused)])
    attempt = await asyncio.to_thread(next_attempt, store, job.job_id)
    cancels.taken = AttemptFence(store, job.job_id, attempt)
    try:
        records = await _attempts(job, worker, store, cancels, send, max_attempts)
    except HandedBack:
        raise
    except Exception as e:  # a fence lost while the attempt failed: stand down, announce nothing
        try:
            await asyncio.to_thread(cancels.taken.check)
        except FencedOff as fenced:
            raise fenced from e
        except StorageError:
            pass  # S3 cannot tell now: the failure goes on (a retry checks again first)
        raise
    cancels.taken = None
    return records


async def still_owned(cancels: CancelBook, job_id: str) -> None:
    """Raise FencedOff when this trainer's last attempt of ``job_id`` (a handler retried, the
    failure hook) is stale; StorageError when S3 cannot tell."""
    taken = cancels.taken
    if taken is not None and taken.job_id == job_id:
        await asyncio.to_thread(taken.check)


async def _attempts(
    job: JobValidated,
    worker: WarmWorker,
    store: ObjectStore,
    cancels: CancelBook,
    send: Send,
    max_attempts: int,
) -> list[OutRecord]:
    """From the attempt just taken (``cancels.taken``) to the job's end or its hand-back."""
    assert cancels.taken is not None
    attempt = cancels.taken.attempt
    limit = max_attempts + await asyncio.to_thread(handovers, store, job.job_id)
    fenced = cancels.taken.guarded()
    if attempt > limit:
        return await finish(fenced, job.job_id, [exhausted_job(job, attempt - 1, max_attempts)])
    cancel = cancels.for_job(job)
    if cancel is not None:
        cancelled = JobCancelled(job_id=job.job_id, attempt=attempt, reason=cancel.reason,
                                 cause=FailureReason.CANCELLED)  # fmt: skip
        return await finish(fenced, job.job_id, [cancelled])
    cancels.running = job
    try:
        outcome, used = await _train(job, cancels, worker, send, limit)
    finally:
        cancels.running, gave_way, cancels.giving_way = None, cancels.giving_way, None
    fence, sender = cancels.taken, fenced_send(send, cancels.taken)
    if outcome.status == "preempted":
        await _hand_back(job, fence, outcome, sender, used, requeue=gave_way is not None)
    return await _conclude(job, fence, outcome, sender, used)


def fenced_send(send: Send, fence: AttemptFence) -> Send:
    """``send``, each record only after the attempt's fence was checked (FencedOff: stale)."""

    async def fenced(record: OutRecord) -> None:
        await asyncio.to_thread(fence.check)
        await send(record)

    return fenced


async def _hand_back(
    job: JobValidated,
    fence: AttemptFence,
    outcome: Outcome,
    send: Send,
    used: list[AttemptUsage],
    *,
    requeue: bool = False,
) -> None:
    """A preempted attempt is no end: announce it, keep it out of the attempt limit and give
    the record back undone (raises HandedBack: the next owner resumes from its checkpoint; or
    ``Requeued`` when it gave way to a higher priority: it waits again on this trainer)."""
    attempt = fence.attempt
    gave_way_ms = int(datetime.now(UTC).timestamp() * 1000) if requeue else None
    await asyncio.to_thread(hand_over, fence.guarded(), job.job_id, attempt, gave_way_ms)
    step = outcome.checkpoint_step
    reason = outcome.reason or "the trainer stopped"
    preempted = JobPreempted(
        job_id=job.job_id, attempt=attempt, reason=reason, step=step, usage=used
    )
    await send(encode(preempted, SOURCE))
    log.info("job_preempted", attempt=attempt, step=step, requeued=requeue)
    stopped = f"job {job.job_id} preempted at attempt {attempt}: {reason}"
    raise Requeued(stopped) if requeue else HandedBack(stopped)


async def _train(
    job: JobValidated,
    cancels: CancelBook,
    worker: WarmWorker,
    send: Send,
    max_attempts: int,
) -> tuple[Outcome, list[AttemptUsage]]:
    """Run the job, again after a retriable failure (each retry a new attempt, taken only while
    the last one still holds its fence: ``cancels.taken``); its last outcome, and what each
    attempt used."""
    used: list[AttemptUsage] = []
    while True:
        fence = cancels.taken
        assert fence is not None
        sender = fenced_send(send, fence)

        async def forward(event: BaseModel, sender: Send = sender) -> None:
            await sender(encode(event, SOURCE))

        outcome, usage = await _run_guarded(worker, job, fence, forward)
        used.append(usage)
        if not (outcome.status == "failed" and outcome.retriable and fence.attempt < max_attempts):
            return outcome, used
        log.warning("job_retry", attempt=fence.attempt, reason=outcome.reason)
        await asyncio.to_thread(fence.check)
        attempt = await asyncio.to_thread(next_attempt, fence.store, job.job_id)
        cancels.taken = AttemptFence(fence.store, job.job_id, attempt)


async def _run_guarded(
    worker: WarmWorker,
    job: JobValidated,
    fence: AttemptFence,
    forward: Callable[[BaseModel], Awaitable[None]],
) -> tuple[Outcome, AttemptUsage]:
    """Run in the worker; if this task is cancelled (rebalance, shutdown) stop the job quietly.

    A start handed back this way is not the job's fault: it is given back to the attempt count
    (a trainer killed outright cannot, and that start counts). The attempt's log is uploaded
    as it goes and once more at its end, before its end is announced. The trainer's clock
    measures what the attempt used (``training/worker/clock.py``). The log is the attempt's
    own key, the one thing a stale attempt still writes (no other attempt writes it).
    """
    attempt, store = fence.attempt, fence.store
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
                asyncio.to_thread(hand_over, fence.guarded(), job.job_id, attempt), 10
            )
        with contextlib.suppress(Exception):
            await asyncio.wait_for(attempt_log.ended(), 10)
        raise
    await attempt_log.ended()
    return outcome, usage


async def _conclude(
    job: JobValidated,
    fence: AttemptFence,
    outcome: Outcome,
    send: Send,
    used: list[AttemptUsage],
) -> list[OutRecord]:
    attempt = fence.attempt
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
    return await finish(fence.guarded(), job.job_id, terminal)
