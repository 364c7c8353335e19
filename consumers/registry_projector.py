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
from functools import partial

import structlog

from consumers._entry import serve
from sparktrainer.registry.runner import Projector
from sparktrainer.registry.store import jobs_by_status
from sparktrainer.settings import Settings
from sparktrainer.telemetry.prometheus import Collector, ConsumerCollector, JobsByState

log = structlog.get_logger(__name__)


class ProjectorService:
    """Start the projector, follow the log (or catch up once), close it."""

    def __init__(self, settings: Settings, args: argparse.Namespace) -> None:
        self.projector = Projector(settings, args.db)
        self.args = args
        self._stop = asyncio.Event()

    async def run(self) -> None:
        """Until stopped, or with --once until caught up with the log's end."""
        await self.projector.start(rebuild=self.args.rebuild)
        try:
            if self.args.once:
                await self.projector.catch_up()
            else:
                await self.projector.run(self._stop)
        finally:
            await self.projector.close()
            log.info("projector_stopped", **vars(self.projector.stats))

    async def wait_positioned(self, timeout_s: float) -> None:
        """Wait until every partition is assigned and sought to the stored offset."""
        await asyncio.wait_for(self.projector.ready.wait(), timeout_s)

    def stop(self) -> None:
        """Stop after the batch being folded."""
        self._stop.set()

    def collectors(self) -> list[Collector]:
        """Prometheus: records folded by topic, lag, and jobs by state in the read model."""
        return [
            ConsumerCollector({"projector": self.projector}),
            JobsByState(partial(jobs_by_status, self.projector.db_path)),
        ]


def main(argv: list[str] | None = None) -> int:
    """Console entry point."""
    parser = argparse.ArgumentParser(prog="registry-projector", description=__doc__.split("\n")[0])
    parser.add_argument("--db", help="SQLite file of this replica's read model")
    parser.add_argument(
        "--rebuild", action="store_true", help="wipe the read model and replay from the beginning"
    )
    parser.add_argument("--once", action="store_true", help="exit once caught up with the log")
    return serve("registry-projector", ProjectorService, parser, argv)


if __name__ == "__main__":
    raise SystemExit(main())
