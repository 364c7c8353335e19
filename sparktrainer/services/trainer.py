"""The trainer service: validated jobs, one at a time per device, trained in a warm worker.

Four loops share one producer: the job runtime (group ``sparktrainer-trainer``, on the validated
topics of the resource classes it serves, one job at a time, the highest aged priority first:
``scheduling/picker.py``), a cancel listener that sees every cancel request (a group-less
``LogReader`` from the start of jobs.control), a cancel responder (group
``sparktrainer-trainer-control``) that answers cancels for jobs that had already ended, and
heartbeats on sparktrainer.trainers (``scheduling/presence.py``); beside them the janitor
(``services/janitor.py``) removes deleted models' files after their grace.
"""

from __future__ import annotations

import asyncio
import contextlib
import functools
from datetime import UTC, datetime
from pathlib import Path
from typing import TypeVar

import structlog
from aiokafka.coordinator.assignors.sticky.sticky_assignor import StickyPartitionAssignor
from pydantic import BaseModel

from sparktrainer.bus.kafka import make_producer, send
from sparktrainer.bus.reader import LogReader
from sparktrainer.bus.runtime import ConsumerRuntime
from sparktrainer.bus.supervise import Faults, supervise
from sparktrainer.contracts.envelope import EnvelopeError, OutRecord, decode, encode
from sparktrainer.contracts.events import CancelRequested, JobFailed, JobValidated
from sparktrainer.contracts.failures import FailureReason
from sparktrainer.contracts.fairshare import FairShare, Ledger, shares_of
from sparktrainer.contracts.preemption import PreemptionRule
from sparktrainer.contracts.records import (
    Received,
    SkipCounter,
    content_fingerprint,
    decode_received,
)
from sparktrainer.contracts.schedule_events import TrainerHeartbeat
from sparktrainer.contracts.tenants import load_tenants
from sparktrainer.contracts.topics import JOBS_CONTROL, TRAINERS, class_topics
from sparktrainer.contracts.trace import job_trace, traced
from sparktrainer.errors import FencedOff, StorageError
from sparktrainer.scheduling.picker import PriorityWaiting
from sparktrainer.scheduling.preempting import Preemptions
from sparktrainer.scheduling.presence import Presence, trainer_id
from sparktrainer.scheduling.serving import served_classes, unserved
from sparktrainer.scheduling.usage import MISSED_BEATS, FleetUsage
from sparktrainer.services.admission import refusals_of
from sparktrainer.services.janitor import Janitor
from sparktrainer.services.trainer_metrics import TrainerObserver, WorkerCollector
from sparktrainer.settings import Settings
from sparktrainer.storage.outcomes import claim, gave_way_times
from sparktrainer.storage.s3 import ObjectStore
from sparktrainer.telemetry.prometheus import (
    Collector,
    ConsumerCollector,
    FaultsCollector,
    IgnoredCancels,
)
from sparktrainer.telemetry.tracing import span
from sparktrainer.training.ends import SOURCE, answer_cancel
from sparktrainer.training.runner import CancelBook, drive_job, still_owned
from sparktrainer.training.worker.warm import WarmWorker

log = structlog.get_logger(__name__)
T = TypeVar("T", bound=BaseModel)
GROUP = "sparktrainer-trainer"
STOP_MARGIN_S = 5.0  # past preempt_grace_s: the preempted event and the hand-back
NOTICE_POLL_S = 0.5
PREEMPT_POLL_S = 0.5  # how often the running job is weighed against the waiting ones


class TrainerService:
    """Wires the job runner to Kafka: what the deployable trainer process runs.

    :param settings: the process settings.
    :param once: take one job, finish it, stop (scale-to-zero runners).
    :param idle_timeout_s: with ``once``, stop when no job arrives within this many seconds.
    :param group_id: the job runtime's consumer group.
    :param control_group_id: the cancel responder's group (default ``{group_id}-control``).
    :param consumer_options: further aiokafka options for both group consumers.
    """

    def __init__(
        self,
        settings: Settings,
        *,
        once: bool = False,
        idle_timeout_s: float | None = None,
        group_id: str = GROUP,
        control_group_id: str | None = None,
        consumer_options: dict[str, object] | None = None,
    ) -> None:
        self.settings = settings
        self.once = once
        self.idle_timeout_s = idle_timeout_s
        self.store = ObjectStore.from_settings(settings)
        self.worker = WarmWorker(settings)
        self.cancels = CancelBook(
            worker=self.worker,
            max_entries=settings.cancel_memory_entries,
            ttl_s=settings.cancel_memory_s,
        )
        self.tenants = load_tenants(settings.tenants_file)
        self.observer = TrainerObserver(self.tenants.names)
        self.classes: tuple[str, ...] = ()  # the resource classes served: known once started
        self.presence_id = trainer_id()  # what its heartbeats on sparktrainer.trainers name it
        self.fleet = FleetUsage(self.presence_id, settings.schedule_fair_window_s)  # heartbeats
        self.skipped = SkipCounter("trainer")
        self.producer = make_producer(settings)
        self.jobs = self._job_runtime(group_id, consumer_options)
        assert isinstance(self.jobs.waiting, PriorityWaiting)
        self.preemptions = Preemptions(PreemptionRule.from_settings(settings), self.jobs.waiting,
                                       functools.partial(gave_way_times, self.store))  # fmt: skip
        self._record: Received | None = None  # the running job's record
        self.control = ConsumerRuntime(
            settings,
            name="trainer-control",
            group_id=control_group_id or f"{group_id}-control",
            topics=(JOBS_CONTROL,),
            handler=self.handle_cancel,
            concurrency=4,
            producer=self.producer,
            consumer_options=consumer_options,
        )
        self.faults = Faults()  # what the background loops survived (bus/supervise.py)
        self.janitor = Janitor(settings, self.store, self.producer, self.faults)
        self.ready = asyncio.Event()

    def _job_runtime(
        self, group_id: str, consumer_options: dict[str, object] | None
    ) -> ConsumerRuntime:
        """One job at a time; a running job survives rebalances that leave it here."""
        return ConsumerRuntime(
            self.settings,
            name="trainer",
            group_id=group_id,
            topics=(),  # the served classes' topics, once the worker reports its devices
            handler=self.handle_job,
            on_failure=self.job_failed,
            concurrency=1,
            max_records=1 if self.once else None,
            handler_attempts=3,
            revoke_grace_s=1.0,
            # The preempted job's grace, then a little to announce it and hand it back.
            shutdown_grace_s=self.settings.preempt_grace_s + STOP_MARGIN_S,
            keep_work_on_revoke=True,
            producer=self.producer,
            waiting=PriorityWaiting(
                self.settings.schedule_aging_s,
                priorities=self.settings.schedule_priorities,
                fair=FairShare(
                    shares_of(self.tenants),
                    self.settings.schedule_aging_s,
                    self.settings.schedule_priorities,
                ),
                ledger=self._ledger,
                lookahead=self.settings.schedule_lookahead_records,
            ),
            consumer_options={
                # Sticky: a trainer joining does not move a running job's partition.
                "partition_assignment_strategy": (StickyPartitionAssignor,),
                **(consumer_options or {}),
            },
        )

    def _ledger(self) -> Ledger:
        """Who runs what across the fleet now; this trainer's own job from its own state."""
        return self.fleet.ledger(datetime.now(UTC), self._presence().beat())

    async def follow_fleet(self) -> None:
        """Fold every trainer's heartbeats, from a few intervals (or the fair window) back on."""
        cfg = self.settings
        back_s = max(MISSED_BEATS * cfg.trainer_heartbeat_s, cfg.schedule_fair_window_s)
        since_ms = int((datetime.now(UTC).timestamp() - back_s) * 1000)
        async with LogReader(self.settings) as reader:
            tps = await reader.partitions((TRAINERS,))
            ends = await reader.ends(tps)
            reader.assign(
                {tp: (await reader.offsets_at([tp], since_ms)).get(tp, ends[tp]) for tp in tps}
            )
            while True:
                for r in await reader.read(timeout_ms=200):
                    # Not a heartbeat: counted by the registry's view; anything else: here.
                    with self.faults.record("fleet", r), contextlib.suppress(EnvelopeError):
                        self.fleet.fold(self._decode(r, TrainerHeartbeat))

    def _decode(self, rec: Received, expected: type[T]) -> T:
        """One of our events from a record (EnvelopeError: not one, or dated past its record)."""
        event: T = decode_received(
            rec, expected, time_ahead_max_s=self.settings.event_time_ahead_max_s
        )
        return event

    def __repr__(self) -> str:
        return (
            f"TrainerService(jobs={self.jobs.stats}, control={self.control.stats}, "
            f"skipped={dict(self.skipped.counts)}, {self.faults})"
        )

    async def handle_job(self, rec: Received) -> list[OutRecord]:
        """One validated job to its terminal event, every event in the submission's trace.

        Records that are no job are skipped, and so is a job under an id that a different job
        owns: an answer under that id would end the other job (the validator rejects such a
        submission under an id of its own).
        """
        try:
            job = self._decode(rec, JobValidated)
        except EnvelopeError as e:
            self.skipped.skip(rec, "not_a_validated_job", e)
            return []  # not a job we can name; logged with its coordinates
        if misrouted := unserved(job, rec.topic, self.classes):
            return [traced(encode(misrouted, SOURCE), job_trace(rec.headers, job.job_id))]
        fingerprint = content_fingerprint(job)
        if await asyncio.to_thread(claim, self.store, job.job_id, fingerprint, job.tenant):
            self.skipped.skip(rec, "job_id_taken", f"{job.job_id} belongs to a different job")
            return []
        await self.worker.start()  # its capacity (devices, memory budget) is known from here
        self._record = rec  # what a preemption weighs against the waiting records
        with span("train job", job_trace(rec.headers, job.job_id), job_id=job.job_id) as trace:

            async def forward(record: OutRecord) -> None:
                self._observe(job, record)
                await send(self.producer, traced(record, trace))

            admit = functools.partial(self._admit, topic=rec.topic)
            try:
                records = await drive_job(job, worker=self.worker, store=self.store,
                                          cancels=self.cancels, send=forward,
                                          max_attempts=self.settings.job_max_attempts,
                                          admit=admit)  # fmt: skip
            finally:
                self._record = None
        for record in records:
            self._observe(job, record)  # the end: the failures counter sees its reason
        return [traced(r, trace) for r in records]

    async def _admit(self, job: JobValidated, topic: str) -> list[str]:
        """Why this trainer will not run ``job`` (read from ``topic``): the validator's checks
        again, the job's home topic, this trainer's capacity."""
        return await refusals_of(job, self.store, self.settings, self.worker.capacity,
                                 topic=topic, tenants=self.tenants)  # fmt: skip

    def _observe(self, job: JobValidated, record: OutRecord) -> None:
        with contextlib.suppress(EnvelopeError):  # our own events: decoding them cannot fail
            self.observer.observe(job, decode(record.value, record.headers))

    def collectors(self) -> list[Collector]:
        """Prometheus: both runtimes' records and lag, the worker's counters, the histograms."""
        return [
            ConsumerCollector({"trainer": self.jobs, "trainer-control": self.control}),
            WorkerCollector(self.worker),
            FaultsCollector(self.faults),
            IgnoredCancels(lambda: len(self.cancels.foreign)),
            *self.observer.collectors(),
        ]

    async def job_failed(self, rec: Received, error: BaseException) -> list[OutRecord]:
        """The runner itself failed (e.g. S3 down past its retries): the job ends, unless this
        trainer's attempt was superseded (FencedOff: it stands down). When S3 cannot tell, the
        broker does: only the record partition's owner now may end it (nobody else started it)."""
        try:
            job = self._decode(rec, JobValidated)
        except EnvelopeError:
            return []
        try:
            await still_owned(self.cancels, job.job_id)
        except StorageError as e:
            if not await self.jobs.holds(rec):
                raise FencedOff(f"job {job.job_id}: S3 cannot tell whether this trainer's attempt "
                                f"still owns it ({e}) and the group has moved on; announcing "
                                "nothing") from e  # fmt: skip
        self.cancels.taken = None
        failed = JobFailed(
            job_id=job.job_id,
            reason=f"trainer could not run the job: {type(error).__name__}: {error}"[:500],
            error_type=type(error).__name__,
            retriable=True,
            cause=FailureReason.STORAGE
            if isinstance(error, StorageError)
            else FailureReason.INTERNAL,
        )
        return [traced(encode(failed, SOURCE), job_trace(rec.headers, job.job_id))]

    async def handle_cancel(self, rec: Received) -> list[OutRecord]:
        """Answer a cancel for a job that had already ended."""
        try:
            cancel = self._decode(rec, CancelRequested)
        except EnvelopeError as e:
            self.skipped.skip(rec, "not_a_cancel", e)
            return []
        trace = job_trace(rec.headers, cancel.job_id)
        return [traced(r, trace) for r in await answer_cancel(cancel, self.store)]

    async def listen_cancels(self) -> None:
        """See every cancel request (no group), from the start of the log."""
        async with LogReader(self.settings) as reader:
            await reader.assign_at_beginning(await reader.partitions((JOBS_CONTROL,)))
            while True:
                for r in await reader.read(timeout_ms=200):
                    # Not a cancel: the responder logs those; anything else: counted here.
                    with self.faults.record("cancels", r), contextlib.suppress(EnvelopeError):
                        self.cancels.request(self._decode(r, CancelRequested))

    async def run(self) -> int:
        """Start the worker and the loops; stop when the job loop stops."""
        await self.worker.start()
        self.classes = served_classes(self.settings, [m for _, m in self.worker.gpus])
        self.jobs.topics = class_topics(*self.classes)
        await self.producer.start()
        # Background loops: each restarted (with backoff) should it die, its errors counted.
        loops = {"heartbeats": self._presence().run, "cancels": self.listen_cancels,
                 "fleet": self.follow_fleet, "janitor": self.janitor.run,
                 "notice": self.watch_notice, "priority": self.watch_priority}  # fmt: skip
        presence, listener, fleet, janitor, notice, priority = (
            asyncio.create_task(supervise(name, run, self.faults)) for name, run in loops.items()
        )
        control = asyncio.create_task(supervise("cancel-responder", self.control.run, self.faults))
        jobs = asyncio.create_task(self.jobs.run())
        try:
            await asyncio.wait(
                [asyncio.ensure_future(self.jobs.wait_positioned(timeout_s=120)), jobs],
                return_when=asyncio.FIRST_COMPLETED,
            )
            self.ready.set()
            if self.once and self.idle_timeout_s:
                await self._stop_if_idle(jobs)
            await jobs
        finally:
            self.control.stop()
            for loop in (listener, fleet, presence, janitor, notice, priority):
                loop.cancel()
            await asyncio.gather(
                control, listener, fleet, presence, janitor, notice, priority,
                return_exceptions=True,
            )  # fmt: skip
            await self.producer.stop()
            await self.worker.stop()
        return 0

    def _presence(self) -> Presence:
        """Heartbeats: the classes served, the GPUs, the running job."""
        return Presence(
            group=self.jobs.group_id,
            classes=self.classes,
            gpus=self.worker.gpus,
            running=lambda: self.cancels.running,
            send=lambda r: send(self.producer, r),
            every_s=self.settings.trainer_heartbeat_s,
            trainer_id=self.presence_id,
        )

    async def wait_positioned(self, timeout_s: float) -> None:
        """Wait until the job runtime has its partitions and positions (or has stopped)."""
        await asyncio.wait_for(self.ready.wait(), timeout_s)

    async def _stop_if_idle(self, jobs: asyncio.Task[object]) -> None:
        """--once with nothing to do: exit instead of holding a GPU until a deadline."""
        await asyncio.wait([jobs], timeout=self.idle_timeout_s)
        if not jobs.done() and self.jobs.stats.records_in == 0:
            log.info("idle_exit", idle_timeout_s=self.idle_timeout_s)
            self.jobs.stop()

    async def watch_notice(self) -> None:
        """Stop as on SIGTERM once the termination-notice file appears (a spot handler, a
        preStop hook writes it); nothing to watch when the setting is empty."""
        if not self.settings.preempt_notice_file:
            return
        path = Path(self.settings.preempt_notice_file)
        while True:  # for the trainer's life; cancelled with its other loops
            if await asyncio.to_thread(path.exists):
                break
            await asyncio.sleep(NOTICE_POLL_S)
        log.warning("termination_notice", file=str(path))
        self.stop("termination notice")

    async def watch_priority(self) -> None:
        """Preempt the running job for a waiting one of a higher priority that has waited
        ``preempt_after_s`` (``scheduling/preempting.py``); it waits again here."""
        while not self.once:  # for the trainer's life (one job: nothing to give way to)
            await asyncio.sleep(PREEMPT_POLL_S)
            job, running = self.cancels.running, self._record
            if job is None or running is None or self.cancels.giving_way:
                continue
            await self.preemptions.recall(job.job_id, self.cancels.taken)  # once an attempt
            why = self.preemptions.check(running, job.job_id)
            if why is not None and self.cancels.give_way(job.job_id, why):
                log.info("job_gives_way", job_id=job.job_id, why=why)
                self.preemptions.gave_way(job.job_id)

    def stop(self, why: str = "SIGTERM") -> None:
        """Graceful stop: the running job checkpoints at its next optimizer step, announces
        JobPreempted and is handed back (within ``preempt_grace_s``); no new job starts."""
        self.worker.preempt(f"the trainer is stopping ({why}); the job resumes on another")
        self.jobs.stop()
