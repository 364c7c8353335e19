"""``sparktrainer compare``: runs side by side, from the registry read model.

sparktrainer compare JOB [JOB ...] | --sweep ID | --model NAME | --tag TAG [--metric S] [--json]
"""

from __future__ import annotations

import argparse
import json
from typing import Any

from rich.markup import escape
from rich.table import Table

from sparktrainer.cli import common
from sparktrainer.cli.common import OK, CliError, command, load_settings, out


def register(subparsers: Any) -> None:
    """Add ``compare``."""
    p = subparsers.add_parser("compare", help="runs side by side: metrics, what differs, data")
    p.add_argument("jobs", nargs="*", help="job ids")
    p.add_argument("--sweep", help="a sweep's trials")
    p.add_argument("--model", help="a model name's versions")
    p.add_argument("--tag", help="models with this tag")
    p.add_argument("--metric", help="the series to rank by (default: the sweep's, else loss/val)")
    p.add_argument("--json", action="store_true")
    common.add_db_options(p)
    p.set_defaults(func=cmd_compare)


@command
def cmd_compare(args: argparse.Namespace) -> int:
    """A table: one row per run, its differing parameters, final/best metric, data, duration."""
    from sparktrainer.registry.compare import (
        CompareError,
        RunSelection,
        best_run,
        compare_runs,
        sweep_facts,
    )

    selection = RunSelection(tuple(args.jobs), args.sweep, args.model, args.tag)
    if not (selection.jobs or args.sweep or args.model or args.tag):
        raise CliError("choose runs: job ids, --sweep ID, --model NAME or --tag TAG")
    registry = common.read_model(load_settings(), args)
    try:
        found = registry.read(compare_runs, registry.read(selection.job_ids))
    except CompareError as e:
        raise CliError(str(e)) from e
    sweep = registry.read(sweep_facts, args.sweep) if args.sweep else None
    metric = args.metric or (sweep or {}).get("series") or "loss/val"
    found.update(metric=metric, best=best_run(found, metric), sweep=sweep)
    if common.printed_as_json(args, found):
        return OK
    _print(found, metric)
    return OK


def _print(found: dict[str, Any], metric: str) -> None:
    table = Table("job id", "status", *found["differing"], f"{metric} final", f"{metric} best",
                  "data", "duration")  # fmt: skip
    for run in found["runs"]:
        m = run["metrics"].get(metric, {})
        data = run["data"] or {}
        mark = " [bold green]*[/]" if run["job_id"] == found["best"] else ""
        table.add_row(
            escape(run["job_id"]) + mark,
            run["status"] or "unknown",
            *(escape(json.dumps(run["params"].get(p))) for p in found["differing"]),
            _num(m.get("final")),
            _num(m.get("best")),
            escape(str(data.get("sha256") or data.get("source") or ""))[:16],
            "" if run["duration_s"] is None else f"{run['duration_s']:.0f} s",
        )
    out.print(table)
    out.print(f"{len(found['runs'])} runs; * best by {escape(metric)}")


def _num(v: float | None) -> str:
    return "" if v is None else f"{v:.4g}"
