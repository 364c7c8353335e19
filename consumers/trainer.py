"""The trainer: takes validated jobs one at a time per device and trains them in a warm worker.

    python -m consumers.trainer [--once]

Three loops share one producer: the job runtime (group ``sparktrainer-trainer``, one job at a
time, partitions paused while it trains), a cancel listener that sees every cancel request
(no group), and a cancel responder (group ``sparktrainer-trainer-control``) that answers
cancels for jobs that had already ended.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib

import structlog
from aiokafka import TopicPartition
from aiokafka.coordinator.assignors.sticky.sticky_assignor import StickyPartitionAssignor

from consumers._entry import announce_ready, run_main
from sparktrainer.bus.kafka import make_consumer, make_producer, send
from sparktrainer.bus.runtime import ConsumerRuntime, Received
from sparktrainer.contracts.envelope import EnvelopeError, OutRecord, decode, encode
from sparktrainer.contracts.events import CancelRequested, JobFailed, JobValidated
from sparktrainer.contracts.topics import JOBS_CONTROL, JOBS_VALIDATED
from sparktrainer.settings import Settings
from sparktrainer.storage.s3 import ObjectStore
from sparktrainer.training.runner import SOURCE, CancelBook, answer_cancel, drive_job
from sparktrainer.training.worker.warm import WarmWorker

log = structlog.get_logger(__name__)
GROUP = "sparktrainer-trainer"


class Trainer:
    """Wires the job runner to Kafka: the deployable trainer process."""

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
        self.cancels = CancelBook(worker=self.worker)
        self.producer = make_producer(settings)
        self.jobs = ConsumerRuntime(
            settings,
            name="trainer",
            group_id=group_id,
            topics=(JOBS_VALIDATED,),
            handler=self.handle_job,
            on_failure=self.job_failed,
            concurrency=1,
            max_records=1 if once else None,
            handler_attempts=3,
            revoke_grace_s=1.0,
            keep_work_on_revoke=True,
            producer=self.producer,
            consumer_options={
                # Sticky: a trainer joining does not move a running job's partition.
                "partition_assignment_strategy": (StickyPartitionAssignor,),
                **(consumer_options or {}),
            },
        )
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
        self.ready = asyncio.Event()

    async def handle_job(self, rec: Received) -> list[OutRecord]:
        """One validated job to its terminal event."""
        try:
            job = decode(rec.value, rec.headers, JobValidated)
        except EnvelopeError as e:
            log.error("undecodable_validated_event", error=str(e), offset=rec.offset)
            return []  # not a job we can name; logged with its coordinates
        return await drive_job(
            job,
            worker=self.worker,
            store=self.store,
            cancels=self.cancels,
            send=lambda r: send(self.producer, r),
            max_attempts=self.settings.job_max_attempts,
        )

    async def job_failed(self, rec: Received, error: BaseException) -> list[OutRecord]:
        """The runner itself failed (e.g. S3 down past its retries): the job still ends."""
        try:
            job = decode(rec.value, rec.headers, JobValidated)
        except EnvelopeError:
            return []
        failed = JobFailed(
            job_id=job.job_id,
            reason=f"trainer could not run the job: {type(error).__name__}: {error}"[:500],
            error_type=type(error).__name__,
            retriable=True,
        )
        return [encode(failed, SOURCE)]

    async def handle_cancel(self, rec: Received) -> list[OutRecord]:
        """Answer a cancel for a job that had already ended."""
        try:
            cancel = decode(rec.value, rec.headers, CancelRequested)
        except EnvelopeError as e:
            log.warning("undecodable_cancel", error=str(e), offset=rec.offset)
            return []
        return await answer_cancel(cancel, self.store)

    async def listen_cancels(self) -> None:
        """See every cancel request (no group), from the start of the log."""
        consumer = make_consumer(self.settings, group_id=None)
        await consumer.start()
        try:
            parts = consumer.partitions_for_topic(JOBS_CONTROL) or set()
            tps = [TopicPartition(JOBS_CONTROL, p) for p in parts]
            consumer.assign(tps)
            await consumer.seek_to_beginning(*tps)
            while True:
                batch = await consumer.getmany(timeout_ms=200)
                for records in batch.values():
                    for r in records:
                        with contextlib.suppress(EnvelopeError):
                            self.cancels.request(decode(r.value, r.headers, CancelRequested))
        finally:
            await consumer.stop()

    async def run(self) -> int:
        """Start the worker and the loops; stop when the job loop stops."""
        await self.worker.start()
        await self.producer.start()
        listener = asyncio.create_task(self.listen_cancels())
        control = asyncio.create_task(self.control.run())
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
            listener.cancel()
            await asyncio.gather(control, listener, return_exceptions=True)
            await self.producer.stop()
            await self.worker.stop()
        return 0

    async def _stop_if_idle(self, jobs: asyncio.Task[object]) -> None:
        """--once with nothing to do: exit instead of holding a GPU until a deadline."""
        await asyncio.wait([jobs], timeout=self.idle_timeout_s)
        if not jobs.done() and self.jobs.stats.records_in == 0:
            log.info("idle_exit", idle_timeout_s=self.idle_timeout_s)
            self.jobs.stop()

    def stop(self) -> None:
        """Graceful stop: the running job gets the runtime's grace period."""
        self.jobs.stop()


async def serve(settings: Settings, args: argparse.Namespace) -> int:
    """Run a trainer until SIGTERM/SIGINT (or one job with --once)."""
    trainer = Trainer(
        settings, once=args.once, idle_timeout_s=args.idle_timeout_s, group_id=args.group_id
    )
    trainer.jobs.install_signal_handlers()
    task = asyncio.create_task(trainer.run())
    await asyncio.wait(
        [asyncio.ensure_future(trainer.ready.wait()), task], return_when=asyncio.FIRST_COMPLETED
    )
    announce_ready("trainer")
    return await task


def main(argv: list[str] | None = None) -> int:
    """Console entry point."""
    parser = argparse.ArgumentParser(prog="trainer", description=__doc__)
    parser.add_argument("--once", action="store_true", help="take one job, finish it, exit 0")
    parser.add_argument(
        "--idle-timeout-s",
        type=float,
        default=None,
        help="with --once: exit 0 when no job arrives within this many seconds",
    )
    parser.add_argument("--group-id", default=GROUP, help=f"consumer group (default {GROUP})")
    return run_main("trainer", serve, parser, argv)


if __name__ == "__main__":
    raise SystemExit(main())
