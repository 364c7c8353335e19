"""``sparktrainer replay SOURCE``: re-drive a slice of a topic (see ``sparktrainer.replay``).

Also ``python -m sparktrainer.replay``. Times and offset bounds are parsed here; the engine
takes a :class:`ReplaySpec` and knows no command line.
"""

from __future__ import annotations

import argparse
import re
from collections.abc import Sequence
from dataclasses import replace
from datetime import UTC, datetime, timedelta
from typing import Any

from rich.progress import BarColumn, MofNCompleteColumn, Progress, TimeRemainingColumn
from rich.table import Table

from sparktrainer.cli.common import (
    OK,
    CliError,
    command,
    err,
    load_settings,
    out,
    print_json,
    run,
)
from sparktrainer.replay.engine import ReplayStats, rejected_sources, replay
from sparktrainer.replay.spec import Picked, ReplayError, ReplaySpec

_RELATIVE = re.compile(r"^(\d+(?:\.\d+)?)\s*(ms|s|m|h|d|w)$")
_UNIT_S = {"ms": 0.001, "s": 1, "m": 60, "h": 3600, "d": 86400, "w": 604800}

EPILOG = """examples:
  sparktrainer replay sparktrainer.jobs.submitted --only-rejected --since 1d
  sparktrainer replay sparktrainer.models.registered --dry-run --json
  sparktrainer replay sparktrainer.jobs.lifecycle --since 2h --to scratch.lifecycle --rate 100
  sparktrainer replay sparktrainer.jobs.submitted --from-offset 0:120 --to-offset 0:130
"""


def parse_time(text: str, now: datetime | None = None) -> int:
    """Milliseconds since the epoch from ISO 8601 (UTC when naive), ``now``, or ``1h``-style ago."""
    now = now or datetime.now(UTC)
    text = text.strip()
    match = _RELATIVE.match(text)
    if match:
        ago = timedelta(seconds=float(match[1]) * _UNIT_S[match[2]])
        return int((now - ago).timestamp() * 1000)
    if text == "now":
        return int(now.timestamp() * 1000)
    try:
        at = datetime.fromisoformat(text)
    except ValueError as e:
        raise ReplayError(
            f"'{text}' is not a time: use ISO 8601 (2025-06-01T10:00Z) "
            "or an age like 90s, 15m, 1h, 2d"
        ) from e
    if at.tzinfo is None:
        at = at.replace(tzinfo=UTC)
    return int(at.timestamp() * 1000)


def parse_bound(text: str) -> int | dict[int, int]:
    """``N`` for every partition, or ``P:N,P:N`` per partition."""
    try:
        if ":" not in text:
            return _non_negative(int(text))
        out: dict[int, int] = {}
        for part in text.split(","):
            p, _, n = part.partition(":")
            out[_non_negative(int(p))] = _non_negative(int(n))
        return out
    except ValueError as e:
        raise ReplayError(f"'{text}' is not an offset: use N, or P:N,P:N per partition") from e


def _non_negative(n: int) -> int:
    if n < 0:
        raise ValueError("negative")
    return n


def add_arguments(parser: argparse.ArgumentParser) -> None:
    """The replay options (``sparktrainer replay`` and ``python -m sparktrainer.replay``)."""
    parser.add_argument("source", help="topic to read")
    parser.add_argument("--to", help="destination topic (default: the source topic)")
    parser.add_argument("--partition", type=int, action="append", help="only this partition")
    parser.add_argument("--from-offset", type=_bound, help="first offset: N, or P:N,P:N")
    parser.add_argument("--to-offset", type=_bound, help="last offset, inclusive: N, or P:N,P:N")
    parser.add_argument("--since", help="from this time: ISO 8601, or an age like 30m, 1h, 2d")
    parser.add_argument("--until", help="up to this time (inclusive): ISO 8601 or an age")
    parser.add_argument("--type", action="append", default=[], help="only this ce_type")
    parser.add_argument("--job-id", action="append", default=[], help="only this job's records")
    parser.add_argument("--key", action="append", default=[], help="only records with this key")
    parser.add_argument(
        "--only-rejected",
        action="store_true",
        help="only submissions the validator rejected (and never validated since)",
    )
    parser.add_argument("--limit", type=int, help="replay at most this many records")
    parser.add_argument("--rate", type=float, help="at most N records per second")
    parser.add_argument(
        "--dry-run", action="store_true", help="print what would be sent; send nothing"
    )
    parser.add_argument("--json", action="store_true", help="NDJSON output")
    parser.set_defaults(func=cmd_replay)


def register(subparsers: Any) -> None:
    """Add ``replay``."""
    p = subparsers.add_parser(
        "replay",
        help="re-drive records of a topic (by offsets or time, filtered)",
        epilog=EPILOG,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    add_arguments(p)


def main(argv: Sequence[str] | None = None, prog: str = "sparktrainer replay") -> int:
    """The replay command on its own (``python -m sparktrainer.replay``)."""
    parser = argparse.ArgumentParser(
        prog=prog,
        description="Re-drive records of a topic (by offsets or time, filtered).",
        epilog=EPILOG,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    add_arguments(parser)
    args = parser.parse_args(argv)
    return int(args.func(args))


def _bound(text: str) -> int | dict[int, int]:
    try:
        return parse_bound(text)
    except ReplayError as e:
        raise argparse.ArgumentTypeError(str(e)) from e


def spec_from(args: argparse.Namespace) -> ReplaySpec:
    """The replay the arguments ask for."""
    try:
        since = parse_time(args.since) if args.since else None
        until = parse_time(args.until) if args.until else None
    except ReplayError as e:
        raise CliError(str(e)) from e
    if since is not None and until is not None and since > until:
        raise CliError("--since is after --until: nothing to replay")
    return ReplaySpec(
        source=args.source,
        to=args.to,
        partitions=tuple(args.partition) if args.partition else None,
        from_offset=args.from_offset,
        to_offset=args.to_offset,
        since_ms=since,
        until_ms=until,
        types=tuple(args.type),
        job_ids=tuple(args.job_id),
        keys=tuple(args.key),
        rate_per_s=args.rate,
        dry_run=args.dry_run,
        limit=args.limit,
    )


@command
def cmd_replay(args: argparse.Namespace) -> int:
    """Run the replay with a progress bar (stderr) and a summary (stdout)."""
    spec = spec_from(args)
    settings = load_settings()
    shown: list[Picked] = []
    progress = Progress(
        "[bold]{task.description}",
        BarColumn(),
        MofNCompleteColumn(),
        TimeRemainingColumn(),
        console=err,
        disable=args.json or not err.is_terminal,
        transient=True,
    )
    task = progress.add_task(f"replaying {spec.source}", total=None)

    def on_record(picked: Picked) -> None:
        if not spec.dry_run:
            return
        if args.json:
            print_json({"would_send": picked.as_dict(spec.destination)})
        else:
            shown.append(picked)

    async def go() -> ReplayStats:
        nonlocal spec
        if args.only_rejected:
            spec = replace(spec, only=await rejected_sources(settings, spec.source))
        return await replay(
            settings,
            spec,
            on_record,
            lambda done, total: progress.update(task, completed=done, total=total),
        )

    try:
        with progress:
            stats = run(go())
    except ReplayError as e:
        raise CliError(str(e)) from e
    _summary(args, spec, stats, shown)
    return OK


def _summary(
    args: argparse.Namespace, spec: ReplaySpec, stats: ReplayStats, shown: list[Picked]
) -> None:
    summary = {
        "source": spec.source,
        "to": spec.destination,
        "dry_run": spec.dry_run,
        "scanned": stats.scanned,
        "matched": stats.matched,
        "sent": stats.sent,
        "ranges": stats.ranges,
    }
    if args.json:
        print_json(summary)
        return
    if shown:
        table = Table("from", "key", "type", "timestamp", "bytes")
        for p in shown:
            row = p.as_dict(spec.destination)
            table.add_row(
                row["from"],
                row["key"] or "",
                row["type"] or "",
                row["timestamp"][:23],
                str(row["bytes"]),
            )
        out.print(table)
    verb = "would send" if spec.dry_run else "sent"
    count = stats.matched if spec.dry_run else stats.sent
    out.print(
        f"{verb} {count} of {stats.scanned} records scanned from {spec.source} "
        f"to {spec.destination}",
        highlight=False,
    )
