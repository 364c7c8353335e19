"""The trainer: takes validated jobs one at a time per device and trains them in a warm worker.

    python -m consumers.trainer [--once [--idle-timeout-s S]] [--group-id G]

The wiring lives in ``sparktrainer.services.trainer.TrainerService``.
"""

from __future__ import annotations

import argparse

from consumers._entry import serve
from sparktrainer.services.trainer import GROUP, TrainerService
from sparktrainer.settings import Settings


def _build(settings: Settings, args: argparse.Namespace) -> TrainerService:
    return TrainerService(
        settings, once=args.once, idle_timeout_s=args.idle_timeout_s, group_id=args.group_id
    )


def main(argv: list[str] | None = None) -> int:
    """Console entry point: run a trainer until SIGTERM/SIGINT (or one job with --once)."""
    parser = argparse.ArgumentParser(prog="trainer", description=__doc__)
    parser.add_argument("--once", action="store_true", help="take one job, finish it, exit 0")
    parser.add_argument(
        "--idle-timeout-s",
        type=float,
        default=None,
        help="with --once: exit 0 when no job arrives within this many seconds",
    )
    parser.add_argument("--group-id", default=GROUP, help=f"consumer group (default {GROUP})")
    return serve("trainer", _build, parser, argv)


if __name__ == "__main__":
    raise SystemExit(main())
