"""``sparktrainer replay SOURCE``: re-drive a slice of a topic (see ``sparktrainer.replay``)."""

from __future__ import annotations

import argparse
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
from sparktrainer.replay import (
    Picked,
    ReplayError,
    ReplaySpec,
    ReplayStats,
    parse_bound,
    parse_time,
    rejected_sources,
    replay,
)

EPILOG = """examples:
  sparktrainer replay sparktrainer.jobs.submitted --only-rejected --since 1d
  sparktrainer replay sparktrainer.models.registered --dry-run --json
  sparktrainer replay sparktrainer.jobs.lifecycle --since 2h --to scratch.lifecycle --rate 100
  sparktrainer replay sparktrainer.jobs.submitted --from-offset 0:120 --to-offset 0:130
"""


def add_arguments(parser: argparse.ArgumentParser) -> None:
    """The replay options (shared with ``python -m sparktrainer.replay``)."""
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
            from dataclasses import replace

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
