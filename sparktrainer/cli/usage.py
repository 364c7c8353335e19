"""``sparktrainer usage``: each tenant's GPU- and CPU-seconds, per class and per day.

sparktrainer usage [--tenant T] [--days N] [--json]

Read from the local read model (caught up with the log first), as ``queue`` and ``jobs`` are:
the CLI is the operator's, so it shows every tenant unless asked for one.
"""

from __future__ import annotations

import argparse
from typing import Any

from rich.markup import escape
from rich.table import Table

from sparktrainer.cli import common
from sparktrainer.cli.common import OK, CliError, command, load_settings, out


def register(subparsers: Any) -> None:
    """Add ``usage``."""
    p = subparsers.add_parser("usage", help="GPU- and CPU-seconds per tenant, class and day")
    p.add_argument("--tenant", help="one tenant's usage (default: every tenant's)")
    p.add_argument("--days", type=int, default=30, help="the last N UTC days (default 30)")
    p.add_argument("--json", action="store_true", help="as JSON (as GET /api/usage answers)")
    common.add_db_options(p)
    p.set_defaults(func=cmd_usage)


@command
def cmd_usage(args: argparse.Namespace) -> int:
    """Totals per tenant and class, then per day (JSON: every figure, per day and class)."""
    from sparktrainer.contracts.tenants import check_tenant_name
    from sparktrainer.registry.usage import MAX_DAYS, no_usage, since_day, tenant_usage

    if args.tenant is not None:
        try:
            check_tenant_name(args.tenant)
        except ValueError as e:
            raise CliError(str(e)) from e
    if not 1 <= args.days <= MAX_DAYS:
        raise CliError(f"--days must be within 1..{MAX_DAYS}")
    settings = load_settings()
    found = common.read_model(settings, args).read(tenant_usage, args.tenant, args.days)
    if args.tenant is not None and not found:
        found = [no_usage(args.tenant, since_day(args.days))]
    if common.printed_as_json(args, {"days": args.days, "tenants": found}):
        return OK
    totals = Table("tenant", "class", "attempts", "jobs", "trainer-s", "CPU-s", "GPU-s",
                   title=f"usage since {since_day(args.days)} (UTC)")  # fmt: skip
    days = Table("day", "tenant", "class", "attempts", "trainer-s", "CPU-s", "GPU-s")
    for tenant in found:
        name = escape(tenant["tenant"])
        for c in [*tenant["classes"], {"class": "all", **tenant["totals"]}]:
            totals.add_row(name, c["class"], str(c["attempts"]), str(c["jobs"]), *_seconds(c))
        for d in tenant["days"]:
            days.add_row(d["day"], name, d["class"], str(d["attempts"]), *_seconds(d))
    out.print(totals)
    out.print(days)
    return OK


def _seconds(figures: dict[str, Any]) -> tuple[str, str, str]:
    return tuple(f"{figures[k]:,.1f}" for k in ("wall_s", "cpu_s", "gpu_s"))  # type: ignore[return-value]
