"""``sparktrainer queue``: what waits where, in the order trainers take it, and what runs.

sparktrainer queue [--json]
"""

from __future__ import annotations

import argparse
from typing import Any

from rich.markup import escape
from rich.table import Table

from sparktrainer.cli import common
from sparktrainer.cli.common import OK, command, load_settings, out


def register(subparsers: Any) -> None:
    """Add ``queue``."""
    p = subparsers.add_parser("queue", help="waiting jobs per resource class, running jobs")
    p.add_argument("--json", action="store_true", help="the view as JSON (as GET /api/queue)")
    common.add_db_options(p)
    p.set_defaults(func=cmd_queue)


@command
def cmd_queue(args: argparse.Namespace) -> int:
    """Per class: the waiting jobs by position, its trainers or why none serves it; then running."""
    from sparktrainer.contracts.fairshare import shares_of
    from sparktrainer.contracts.tenants import load_tenants
    from sparktrainer.registry.queue import queue_view

    settings = load_settings()
    view = common.read_model(settings, args).read(
        queue_view,
        settings.schedule_aging_s,
        priorities=settings.schedule_priorities,
        shares=shares_of(load_tenants(settings.tenants_file)),
        fair_window_s=settings.schedule_fair_window_s,
    )
    if common.printed_as_json(args, view):
        return OK
    waiting = common.id_column(
        "job id", (w["job_id"] for c in view["classes"] for w in c["waiting"])
    )
    table = Table("class", "pos", waiting, "tenant", "name", "priority", "now", "waited", "why")
    for c in view["classes"]:
        served = ", ".join(c["trainers"]) or f"[yellow]{escape(c['reason'] or '')}[/]"
        if not c["waiting"]:
            table.add_row(c["class"], "", "", "", "", "", "", "", served)
        for w in c["waiting"]:
            why = escape(w["why"] or "next for " + (", ".join(c["trainers"]) or "a trainer"))
            table.add_row(c["class"], str(w["position"]), escape(w["job_id"]),
                          escape(w["tenant"]), escape(w["name"] or ""), w["priority"],
                          w["effective_priority"], f"{w['waited_s']:.0f} s", why)  # fmt: skip
    out.print(table)
    tenants = Table("tenant", "weight", "share", "class", "running", "GPUs", "quota (jobs/GPUs)")
    for t in view["tenants"]:
        for q in (q for q in t["classes"] if q["running_jobs"] or q["quota_jobs"] is not None):
            quota = f"{_limit(q['quota_jobs'])}/{_limit(q['quota_gpus'])}"
            tenants.add_row(escape(t["tenant"]), f"{t['weight']:g}", f"{t['dominant_share']:.2f}",
                            q["class"], str(q["running_jobs"]), str(q["gpus"]), quota)  # fmt: skip
    out.print(tenants)
    running = Table(common.id_column("running", (r["job_id"] for r in view["running"])), "name",
                    "class", "priority", "trainer", "device", "epoch")  # fmt: skip
    for r in view["running"]:
        epoch = f"{r['epoch']}/{r['total_epochs']}" if r["epoch"] is not None else ""
        where = "preempted, waits" if r.get("preempted") else r["trainer"] or r["worker"] or ""
        running.add_row(escape(r["job_id"]), escape(r["name"] or ""), r["resource_class"] or "",
                        r["priority"] or "", escape(where), escape(r["device"] or ""),
                        epoch)  # fmt: skip
    out.print(running)
    return OK


def _limit(n: int | None) -> str:
    return "-" if n is None else str(n)
