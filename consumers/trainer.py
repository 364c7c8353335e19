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

from consumers._entry import announce_ready, run_main
from sparktrainer.bus.kafka import make_consumer, make_producer, send
from sparktrainer.bus.runtime import ConsumerRuntime, Received
from sparktrainer.contracts.envelope import EnvelopeError, OutRecord, decode
from sparktrainer.contracts.events import CancelRequested, JobValidated
from sparktrainer.contracts.topics import JOBS_CONTROL, JOBS_VALIDATED
from sparktrainer.settings import Settings
from sparktrainer.storage.s3 import ObjectStore
from sparktrainer.training.jobrunner import CancelBook, answer_cancel, run_job
from sparktrainer.training.worker import WarmWorker

log = structlog.get_logger(__name__)
GROUP = "sparktrainer-trainer"
CONTROL_GROUP = "sparktrainer-trainer-control"


class Trainer:
    """Wires the job runner to Kafka: the deployable trainer process."""

    def __init__(self, settings: Settings, *, once: bool = False) -> None:
        self.settings = settings
        self.once = once
        self.store = ObjectStore.from_settings(settings)
        self.worker = WarmWorker(settings)
        self.cancels = CancelBook(worker=self.worker)
        self.producer = make_producer(settings)
        self.jobs = ConsumerRuntime(
            settings, name="trainer", group_id=GROUP, topics=(JOBS_VALIDATED,),
            handler=self.handle_job, concurrency=1, max_records=1 if once else None,
            handler_attempts=1, revoke_grace_s=1.0, producer=self.producer,
        )
        self.control = ConsumerRuntime(
            settings, name="trainer-control", group_id=CONTROL_GROUP, topics=(JOBS_CONTROL,),
            handler=self.handle_cancel, concurrency=4, producer=self.producer,
        )
        self.ready = asyncio.Event()

    async def handle_job(self, rec: Received) -> list[OutRecord]:
        """One validated job to its terminal event."""
        try:
            job = decode(rec.value, rec.headers, JobValidated)
        except EnvelopeError as e:
            log.error("undecodable_validated_event", error=str(e), offset=rec.offset)
            return []  # not a job we can name; logged with its coordinates
        return await run_job(
            job, worker=self.worker, store=self.store, cancels=self.cancels,
            send=lambda r: send(self.producer, r),
        )

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
                [asyncio.ensure_future(self.jobs.ready.wait()), jobs],
                return_when=asyncio.FIRST_COMPLETED,
            )
            self.ready.set()
            await jobs
        finally:
            self.control.stop()
            listener.cancel()
            await asyncio.gather(control, listener, return_exceptions=True)
            await self.producer.stop()
            await self.worker.stop()
        return 0

    def stop(self) -> None:
        """Graceful stop: the running job gets the runtime's grace period."""
        self.jobs.stop()


async def serve(settings: Settings, args: argparse.Namespace) -> int:
    """Run a trainer until SIGTERM/SIGINT (or one job with --once)."""
    trainer = Trainer(settings, once=args.once)
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
    return run_main("trainer", serve, parser, argv)


if __name__ == "__main__":
    raise SystemExit(main())
