"""The ``sparktrainer`` command: each sub-command group lives in its own module here."""

from __future__ import annotations

import argparse
import importlib
import sys
from collections.abc import Sequence

# Each module exposes ``register(subparsers)`` and sets ``func`` on the parsers it adds;
# ``func(args) -> int`` is the exit code.
COMMAND_MODULES = (
    "sparktrainer.cli.stack",  # up, down, status
    "sparktrainer.cli.jobs",  # submit, validate, jobs list/watch/cancel
    "sparktrainer.cli.models",  # models list/show/lineage
    "sparktrainer.cli.replay",  # replay
    "sparktrainer.cli.schemas",  # schemas
    "sparktrainer.cli.serve",  # run a consumer or the API in this process
)


def build_parser() -> argparse.ArgumentParser:
    """The full argument parser, assembled from the command modules."""
    parser = argparse.ArgumentParser(
        prog="sparktrainer", description="Event-driven training job runner on Kafka and S3."
    )
    subparsers = parser.add_subparsers(dest="command", metavar="COMMAND")
    for name in COMMAND_MODULES:
        importlib.import_module(name).register(subparsers)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point of the console script."""
    parser = build_parser()
    args = parser.parse_args(argv)
    if not getattr(args, "func", None):
        parser.print_help()
        return 2
    try:
        return int(args.func(args) or 0)
    except KeyboardInterrupt:
        return 130


if __name__ == "__main__":
    sys.exit(main())
