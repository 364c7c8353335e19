"""Shared start-up for the deployable consumers: settings, logging, signals, topics."""

from __future__ import annotations

import argparse
import asyncio
import sys
from collections.abc import Awaitable, Callable

import structlog

from sparktrainer.bus.kafka import ensure_topics
from sparktrainer.logging import configure
from sparktrainer.settings import Settings


def run_main(
    name: str,
    build: Callable[[Settings, argparse.Namespace], Awaitable[int]],
    parser: argparse.ArgumentParser | None = None,
    argv: list[str] | None = None,
) -> int:
    """Parse args, configure logging, make sure the topics exist, run ``build`` to the end."""
    parser = parser or argparse.ArgumentParser(prog=name)
    args = parser.parse_args(argv)
    settings = Settings()
    configure(settings.log_level)
    structlog.contextvars.bind_contextvars(consumer=name)

    async def main() -> int:
        await ensure_topics(settings)
        return await build(settings, args)

    try:
        return asyncio.run(main())
    except KeyboardInterrupt:
        return 130


def announce_ready(name: str) -> None:
    """The line the embedded stack waits for before it calls a consumer ready."""
    print(f"READY {name}", file=sys.stderr, flush=True)
