"""The validator: answers every record on jobs.submitted with validated or rejected.

python -m consumers.validator [--group-id G]
"""

from __future__ import annotations

import argparse
import asyncio
import time

from consumers._entry import serve
from sparktrainer.bus.runtime import ConsumerRuntime
from sparktrainer.contracts.envelope import OutRecord, encode
from sparktrainer.contracts.records import Received
from sparktrainer.contracts.topics import JOBS_SUBMITTED
from sparktrainer.contracts.trace import job_trace, traced
from sparktrainer.settings import Settings
from sparktrainer.storage.s3 import ObjectStore
from sparktrainer.telemetry.tracing import span
from sparktrainer.validation import door

GROUP = "sparktrainer-validator"


def build_runtime(
    settings: Settings, store: ObjectStore | None, group_id: str = GROUP, **options: object
) -> ConsumerRuntime:
    """The validator's runtime: many records at once, each answered exactly once."""

    async def handle(rec: Received) -> list[OutRecord]:
        started_ns = time.time_ns()
        answers = await asyncio.to_thread(door.answer, rec, store, settings.limits)
        return [in_trace(rec, answer, started_ns) for answer in answers]

    async def on_failure(rec: Received, error: BaseException) -> list[OutRecord]:
        # The checks themselves never raise; this is the object store staying down.
        reason = f"Could not validate the job: {type(error).__name__}: {error}"[:400]
        rejected = door.rejected(rec, [reason + " (a transient failure: resubmit the job)"])
        return [in_trace(rec, encode(rejected, door.SOURCE), time.time_ns())]

    return ConsumerRuntime(
        settings,
        name="validator",
        group_id=group_id,
        topics=(JOBS_SUBMITTED,),
        handler=handle,
        on_failure=on_failure,
        concurrency=settings.validator_concurrency,
        **options,  # type: ignore[arg-type]
    )


def in_trace(rec: Received, answer: OutRecord, started_ns: int) -> OutRecord:
    """The answer in the submission's trace, with the validator's span as its parent."""
    parent = job_trace(rec.headers, answer.key.decode(errors="replace"))
    with span("validate job", parent, started_ns, topic=answer.topic) as trace:
        return traced(answer, trace)


def _build(settings: Settings, args: argparse.Namespace) -> ConsumerRuntime:
    store = ObjectStore.from_settings(settings) if settings.s3_endpoint else None
    return build_runtime(settings, store, group_id=args.group_id)


def main(argv: list[str] | None = None) -> int:
    """Console entry point: run the validator until SIGTERM/SIGINT."""
    parser = argparse.ArgumentParser(prog="validator", description=__doc__)
    parser.add_argument("--group-id", default=GROUP, help=f"consumer group (default {GROUP})")
    return serve("validator", _build, parser, argv)


if __name__ == "__main__":
    raise SystemExit(main())
