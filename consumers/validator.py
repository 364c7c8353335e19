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
        rejected = door._rejected(
            rec,
            None,
            [
                f"Could not validate the job: {type(error).__name__}: {error}"[:400]
                + " (a transient failure: resubmit the job)"
            ],
        )
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
    runtime = build_runtime(settings, store, group_id=args.group_id)
    runtime.install_signal_handlers()
    task = asyncio.create_task(runtime.run())
    await asyncio.wait(
        [asyncio.ensure_future(runtime.wait_positioned(timeout_s=120)), task],
        return_when=asyncio.FIRST_COMPLETED,
    )
    announce_ready("validator")
    await task
    return 0


def main(argv: list[str] | None = None) -> int:
    """Console entry point."""
    parser = argparse.ArgumentParser(prog="validator", description=__doc__)
    parser.add_argument("--group-id", default=GROUP, help=f"consumer group (default {GROUP})")
    return run_main("validator", serve, parser, argv)


if __name__ == "__main__":
    raise SystemExit(main())
