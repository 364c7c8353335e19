"""The registry projector: folds models.registered and jobs.* into a SQLite read model.

    python -m consumers.registry_projector [--db PATH] [--rebuild] [--once]

Each replica keeps its own database (``--db``, default ``SPARKTRAINER_REGISTRY_DB`` or
``$SPARKTRAINER_HOME/registry.sqlite3``) holding the rows *and* the consumed offsets, so no
consumer group is involved. ``--rebuild`` wipes it and replays the log from the beginning;
``--once`` stops once it has caught up with the log's end (a one-shot rebuild).
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import signal

import structlog

from consumers._entry import announce_ready, run_main
from sparktrainer.registry.runner import PROJECTED_TOPICS, Projector, ProjectorStats
from sparktrainer.settings import Settings

__all__ = ["PROJECTED_TOPICS", "Projector", "ProjectorStats", "build_parser", "main", "serve"]

log = structlog.get_logger(__name__)


def build_parser() -> argparse.ArgumentParser:
    """The projector's command line."""
    parser = argparse.ArgumentParser(prog="registry-projector", description=__doc__.split("\n")[0])
    parser.add_argument("--db", help="SQLite file of this replica's read model")
    parser.add_argument(
        "--rebuild", action="store_true", help="wipe the read model and replay from the beginning"
    )
    parser.add_argument("--once", action="store_true", help="exit once caught up with the log")
    return parser


async def serve(settings: Settings, args: argparse.Namespace) -> int:
    """Run until SIGTERM/SIGINT (or, with --once, until caught up)."""
    projector = Projector(settings, args.db)
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGTERM, signal.SIGINT):
        with contextlib.suppress(NotImplementedError, RuntimeError):
            loop.add_signal_handler(sig, stop.set)
    await projector.start(rebuild=args.rebuild)
    announce_ready("registry-projector")
    try:
        if args.once:
            await projector.catch_up()
        else:
            await projector.run(stop)
    finally:
        await projector.close()
        log.info("projector_stopped", **vars(projector.stats))
    return 0


def main(argv: list[str] | None = None) -> int:
    """Console entry point."""
    return run_main("registry-projector", serve, build_parser(), argv)


if __name__ == "__main__":
    raise SystemExit(main())
