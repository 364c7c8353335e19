"""``sparktrainer sweeps``: sweeps and their trials as a table with their metric.

sparktrainer sweeps list [--json]
sparktrainer sweeps show ID [--json]
"""

from __future__ import annotations

import argparse
import json
from typing import Any

from rich.markup import escape
from rich.table import Table

from sparktrainer.cli import common
from sparktrainer.cli.common import OK, command, load_settings, out

TRIAL_STYLE = {"completed": "green", "running": "cyan", "stopped": "yellow", "failed": "red"}


def register(subparsers: Any) -> None:
    """Add ``sweeps list`` and ``sweeps show``."""
    sweeps = subparsers.add_parser("sweeps", help="hyperparameter sweeps and their trials")
    sub = sweeps.add_subparsers(dest="sweeps_command", metavar="ACTION", required=True)
    p = sub.add_parser("list", help="sweeps from the registry read model")
    p.add_argument("--limit", type=int, default=50)
    p.add_argument("--offset", type=int, default=0)
    p.add_argument("--json", action="store_true")
    common.add_db_options(p)
    p.set_defaults(func=cmd_sweeps_list)
    p = sub.add_parser("show", help="one sweep: its trials as a table with their metric")
    p.add_argument("sweep_id")
    p.add_argument("--json", action="store_true")
    common.add_db_options(p)
    p.set_defaults(func=cmd_sweep_show)


@command
def cmd_sweeps_list(args: argparse.Namespace) -> int:
    """Sweeps, newest first."""
    from sparktrainer.registry.sweeps import list_sweeps

    registry = common.read_model(load_settings(), args)
    page = registry.read(list_sweeps, limit=args.limit, offset=args.offset)
    if common.printed_as_json(args, page.as_dict("sweeps")):
        return OK
    ids = [s["sweep_id"] for s in page.items]
    table = Table(
        common.id_column("sweep id", ids), "name", "status", "sampler", "metric", "trials", "best"
    )
    for s in page.items:
        best = (s["ended"] or {}).get("best_trial")
        table.add_row(escape(s["sweep_id"]), escape(s["name"]), s["status"] or "", s["sampler"],
                      f"{s['metric']} ({s['direction'][:3]})", f"{s['planned']}/{s['trials']}",
                      "" if best is None else str(best))  # fmt: skip
    out.print(table)
    return OK


@command
def cmd_sweep_show(args: argparse.Namespace) -> int:
    """One sweep and its trials; exit 2 when unknown."""
    from sparktrainer.registry.sweeps import best_first, get_sweep

    found = common.read_model(load_settings(), args).read(get_sweep, args.sweep_id)
    sweep = common.known(found, "sweep", args.sweep_id)
    if common.printed_as_json(args, sweep):
        return OK
    common.print_fields(sweep, ["sweep_id", "name", "status", "sampler", "metric", "direction",
                         "trials", "max_concurrent", "early_stopping", "ended"])  # fmt: skip
    best = {tr["trial"] for tr in best_first(sweep)[:1]}
    metric = sweep["metric"]
    ids = [tr["job_id"] for tr in sweep["trial_table"]]
    table = Table(
        "trial", common.id_column("job id", ids), "params", "status", metric, "epoch", "note"
    )
    for tr in sweep["trial_table"]:
        style = TRIAL_STYLE.get(tr["status"], "white")
        value = tr[metric]
        note = "best" if tr["trial"] in best else (tr["stopped"] or {}).get("reason", "")
        table.add_row(str(tr["trial"]), escape(tr["job_id"]), escape(json.dumps(tr["params"])),
                      f"[{style}]{tr['status']}[/]", "" if value is None else f"{value:.4g}",
                      "" if tr["epoch"] is None else str(tr["epoch"]), escape(note))  # fmt: skip
    out.print(table)
    return OK
