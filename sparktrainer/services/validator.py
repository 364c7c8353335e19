"""The validator's wiring: the consumer runtime over the submission doors, and its registry
directory.

It reads the plain door and every configured tenant's door (the tenants file); every record is
answered exactly once (``validation.door``), stamped with the tenant of the door it came on.
Fine-tunes name their parent by id, NAME:VERSION or NAME@ALIAS; the ``RegistryDirectory`` (a
read model of the registry topics of its own, caught up with the log before each lookup)
resolves it.
"""

from __future__ import annotations

import argparse
import asyncio
import time

from sparktrainer.bus.batches import BatchRuntime
from sparktrainer.bus.kafka import ensure_topics
from sparktrainer.contracts.access import Access
from sparktrainer.contracts.envelope import OutRecord, encode
from sparktrainer.contracts.records import Received
from sparktrainer.contracts.refs import ModelDirectory
from sparktrainer.contracts.tenants import load_tenants
from sparktrainer.contracts.topics import SWEEP_TRIALS, door_topics
from sparktrainer.contracts.trace import job_trace, traced
from sparktrainer.registry.directory import RegistryDirectory
from sparktrainer.settings import Settings
from sparktrainer.storage.s3 import ObjectStore
from sparktrainer.telemetry.prometheus import Collector
from sparktrainer.telemetry.tracing import span
from sparktrainer.validation import door

GROUP = "sparktrainer-validator"


def build_runtime(
    settings: Settings,
    store: ObjectStore | None,
    group_id: str = GROUP,
    directory: ModelDirectory | None = None,
    **options: object,
) -> BatchRuntime:
    """The validator's runtime: batches of records at once, each record answered exactly once."""
    access = Access.from_settings(settings)
    tenants = load_tenants(settings.tenants_file)

    def answered(rec: Received, started_ns: int) -> list[OutRecord]:
        answers = door.answer(rec, store, settings.limits, directory, access, tenants)
        return [in_trace(rec, answer, started_ns) for answer in answers]

    async def handle(rec: Received) -> list[OutRecord]:
        return await asyncio.to_thread(answered, rec, time.time_ns())

    async def handle_batch(recs: list[Received]) -> list[list[OutRecord]]:
        # One hop for the batch: the checks block on S3 and on the directory's catch-up.
        started_ns = time.time_ns()
        return await asyncio.to_thread(lambda: [answered(rec, started_ns) for rec in recs])

    async def on_failure(rec: Received, error: BaseException) -> list[OutRecord]:
        # The checks themselves never raise; this is the object store or Kafka staying down.
        reason = f"Could not validate the job: {type(error).__name__}: {error}"[:400]
        rejected = door.rejected(rec, [reason + " (a transient failure: resubmit the job)"])
        return [in_trace(rec, encode(rejected, door.SOURCE), time.time_ns())]

    return BatchRuntime(
        settings,
        name="validator",
        group_id=group_id,
        topics=validator_topics(settings),
        handler=handle,
        batch_handler=handle_batch,
        batch_max_records=settings.validator_batch_records,
        on_failure=on_failure,
        concurrency=settings.validator_concurrency,
        **options,
    )


def validator_topics(settings: Settings) -> tuple[str, ...]:
    """What the validator reads: the plain door, each configured tenant's door, and the sweep
    controller's trials."""
    return (*door_topics(load_tenants(settings.tenants_file).names), SWEEP_TRIALS)


def in_trace(rec: Received, answer: OutRecord, started_ns: int) -> OutRecord:
    """The answer in the submission's trace, with the validator's span as its parent."""
    parent = job_trace(rec.headers, answer.key.decode(errors="replace"))
    with span("validate job", parent, started_ns, topic=answer.topic) as trace:
        return traced(answer, trace)


class ValidatorService:
    """The runtime, with the registry directory open around it."""

    def __init__(self, settings: Settings, args: argparse.Namespace) -> None:
        self.settings = settings
        store = ObjectStore.from_settings(settings) if settings.s3_endpoint else None
        self.directory = RegistryDirectory(settings)
        self.runtime = build_runtime(settings, store, args.group_id, self.directory)

    async def run(self) -> None:
        """Make the tenants' doors, open the directory, answer records until stopped, close it."""
        await ensure_topics(self.settings, self.runtime.topics)
        async with self.directory:
            await self.runtime.run()

    async def wait_positioned(self, timeout_s: float) -> None:
        """See ``ConsumerRuntime.wait_positioned``."""
        await self.runtime.wait_positioned(timeout_s)

    def stop(self) -> None:
        """Finish the records in flight, then stop."""
        self.runtime.stop()

    def collectors(self) -> list[Collector]:
        """What Prometheus reads of it: the runtime's records and lag."""
        return self.runtime.collectors()
