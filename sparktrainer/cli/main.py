"""The ``sparktrainer`` command: each sub-command group lives in its own module here.

Only the module of the command being run is imported (``COMMANDS``), so ``sparktrainer
submit`` does not pay for the API, replay or the embedded stack's code; ``--help`` and an
unknown command import them all (``COMMAND_MODULES``).
"""

from __future__ import annotations

import argparse
import importlib
import sys
from collections.abc import Sequence

# Each module exposes ``register(subparsers)`` and sets ``func`` on the parsers it adds;
# ``func(args) -> int`` is the exit code.
COMMAND_MODULES = (
    "sparktrainer.cli.stack",  # up, down, status
    "sparktrainer.cli.submit",  # submit
    "sparktrainer.cli.jobs",  # validate, jobs list/watch/cancel
    "sparktrainer.cli.models",  # models list/show/lineage
    "sparktrainer.cli.replay",  # replay
    "sparktrainer.cli.schemas",  # schemas
    "sparktrainer.cli.serve",  # run a consumer or the API in this process
    "sparktrainer.cli.queue",  # queue
    "sparktrainer.cli.sweeps",  # sweeps list/show
    "sparktrainer.cli.compare",  # compare
    "sparktrainer.cli.usage",  # usage
)
# Which module registers each top-level command (a unit test keeps this true); a command
# not listed here still works: every module is imported to find it.
COMMANDS = {
    "up": "sparktrainer.cli.stack",
    "down": "sparktrainer.cli.stack",
    "status": "sparktrainer.cli.stack",
    "submit": "sparktrainer.cli.submit",
    "validate": "sparktrainer.cli.jobs",
    "jobs": "sparktrainer.cli.jobs",
    "models": "sparktrainer.cli.models",
    "replay": "sparktrainer.cli.replay",
    "schemas": "sparktrainer.cli.schemas",
    "serve": "sparktrainer.cli.serve",
    "queue": "sparktrainer.cli.queue",
    "sweeps": "sparktrainer.cli.sweeps",
    "compare": "sparktrainer.cli.compare",
    "usage": "sparktrainer.cli.usage",
}


def build_parser(modules: Sequence[str] = COMMAND_MODULES) -> argparse.ArgumentParser:
    """The argument parser, assembled from the command modules (all of them by default)."""
    parser = argparse.ArgumentParser(
        prog="sparktrainer", description="Event-driven training job runner on Kafka and S3."
    )
    subparsers = parser.add_subparsers(dest="command", metavar="COMMAND")
    for name in modules:
        importlib.import_module(name).register(subparsers)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point of the console script."""
    args_in = list(sys.argv[1:] if argv is None else argv)
    first = args_in[0] if args_in else ""
    parser = build_parser((COMMANDS[first],) if first in COMMANDS else COMMAND_MODULES)
    args = parser.parse_args(args_in)
    if not getattr(args, "func", None):
        parser.print_help()
        return 2
    try:
        return int(args.func(args) or 0)
    except KeyboardInterrupt:
        return 130


if __name__ == "__main__":
    sys.exit(main())
