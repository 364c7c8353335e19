"""The validator: answers every record on jobs.submitted with validated or rejected.

    python -m consumers.validator
"""

from __future__ import annotations

import argparse
import asyncio

from consumers._entry import announce_ready, run_main
from sparktrainer.bus.runtime import ConsumerRuntime, Received
from sparktrainer.contracts.envelope import OutRecord, encode
from sparktrainer.contracts.topics import JOBS_SUBMITTED
from sparktrainer.settings import Settings
from sparktrainer.storage.s3 import ObjectStore
from sparktrainer.validation import door

GROUP = "sparktrainer-validator"


def build_runtime(
    settings: Settings, store: ObjectStore | None, group_id: str = GROUP, **options: object
) -> ConsumerRuntime:
    """The validator's runtime: many records at once, each answered exactly once."""

    async def handle(rec: Received) -> list[OutRecord]:
        return await asyncio.to_thread(door.answer, rec, store, settings.limits)

    async def on_failure(rec: Received, error: BaseException) -> list[OutRecord]:
        # The checks themselves never raise; this is the object store staying down.
        rejected = door._rejected(rec, None, [
            f"Could not validate the job: {type(error).__name__}: {error}"[:400]
            + " (a transient failure: resubmit the job)"
        ])
        return [encode(rejected, door.SOURCE)]

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


async def serve(settings: Settings, args: argparse.Namespace) -> int:
    """Run the validator until SIGTERM/SIGINT."""
    store = ObjectStore.from_settings(settings) if settings.s3_endpoint else None
    runtime = build_runtime(settings, store)
    runtime.install_signal_handlers()
    task = asyncio.create_task(runtime.run())
    await runtime.ready.wait()
    announce_ready("validator")
    await task
    return 0


def main(argv: list[str] | None = None) -> int:
    """Console entry point."""
    return run_main("validator", serve, argv=argv)


if __name__ == "__main__":
    raise SystemExit(main())
