"""``sparktrainer validate|jobs``: judge jobs, follow and cancel them (submit: cli/submit.py).

sparktrainer validate job.json [--json]          # exit 0 valid, 1 invalid
sparktrainer jobs list [--status S] [--json]
sparktrainer jobs show ID [--json]
sparktrainer jobs watch ID [--timeout S] [--json]
sparktrainer jobs cancel ID [--reason TEXT]
sparktrainer jobs metrics ID [--json] | tensorboard ID     (cli/job_metrics.py)
sparktrainer jobs logs ID [--attempt N] [--follow]         (cli/job_logs.py)
"""

from __future__ import annotations

import argparse
from typing import Any

from rich.markup import escape

from sparktrainer.cli.common import (
    NEGATIVE,
    OK,
    SOURCE,
    CliError,
    acting_tenant,
    add_db_options,
    add_tenant_option,
    command,
    id_column,
    known_job,
    load_settings,
    out,
    print_fields,
    print_json,
    publish,
    read_json_file,
    read_model,
    run,
    safe_id,
)
from sparktrainer.cli.job_logs import add_logs_action
from sparktrainer.cli.job_metrics import register_job_actions
from sparktrainer.contracts.envelope import encode
from sparktrainer.contracts.events import TERMINAL_STATUSES, CancelRequested
from sparktrainer.settings import Settings

STATUS_STYLE = {
    "completed": "green",
    "running": "cyan",
    "validated": "blue",
    "submitted": "white",
    "rejected": "red",
    "failed": "red",
    "cancelled": "yellow",
}


def register(subparsers: Any) -> None:
    """Add validate and jobs (submit is cli/submit.py)."""
    p = subparsers.add_parser("validate", help="the validator's verdict on a job file")
    p.add_argument("file", help="job JSON file, or - for stdin")
    p.add_argument("--json", action="store_true")
    add_db_options(p)
    add_tenant_option(p)
    p.set_defaults(func=cmd_validate)

    jobs = subparsers.add_parser("jobs", help="list, show, watch, cancel jobs or read their logs")
    sub = jobs.add_subparsers(dest="jobs_command", metavar="ACTION", required=True)
    p = sub.add_parser("list", help="jobs from the registry read model")
    p.add_argument("--status", help="only jobs of this status")
    p.add_argument("--limit", type=int, default=50)
    p.add_argument("--offset", type=int, default=0)
    p.add_argument("--json", action="store_true")
    add_db_options(p)
    p.set_defaults(func=cmd_jobs_list)
    p = sub.add_parser("show", help="one job from the registry read model")
    p.add_argument("job_id")
    p.add_argument("--json", action="store_true")
    add_db_options(p)
    p.set_defaults(func=cmd_job_show)
    p = sub.add_parser("watch", help="follow a job's events on Kafka until it ends")
    p.add_argument("job_id")
    p.add_argument("--timeout", type=float, help="give up after this many seconds")
    p.add_argument("--json", action="store_true")
    add_db_options(p)
    p.set_defaults(func=cmd_watch)
    p = sub.add_parser("cancel", help="ask the trainer to stop a job")
    p.add_argument("job_id")
    p.add_argument("--reason", default="cancel requested")
    p.add_argument("--json", action="store_true")
    add_db_options(p)
    add_tenant_option(p)
    p.set_defaults(func=cmd_cancel)
    register_job_actions(sub)
    add_logs_action(sub)


@command
def cmd_watch(args: argparse.Namespace) -> int:
    """Follow a job's events (from its first) until it ends; exit 2 for a job never seen."""
    settings = load_settings()
    job_id = known_job(settings, args)["job_id"]

    async def follow() -> int:
        from sparktrainer.cli.progress import follow_to_end
        from sparktrainer.client.follow import JobFollower

        async with JobFollower(settings, job_id) as follower:
            return await follow_to_end(follower, args.json, args.timeout)

    return run(follow())


@command
def cmd_validate(args: argparse.Namespace) -> int:
    """The validator's verdict on a job file: exit 0 valid, 1 invalid."""
    from sparktrainer.verdict import check, store_for

    body = read_json_file(args.file)
    settings = load_settings()
    tenant = acting_tenant(settings, args)  # the door's rules of the tenant it would go in as
    verdict = run(
        check(body, store_for(settings), settings, _directory(body, settings, args), tenant)
    )
    if args.json:
        print_json(verdict.as_dict())
    else:
        out.print("[green]valid[/]" if verdict.valid else "[red]invalid[/]")
        for error in verdict.errors:
            out.print(f"  [red]error:[/] {escape(error)}", highlight=False)
        for warning in verdict.warnings:
            out.print(f"  [yellow]warning:[/] {escape(warning)}", highlight=False)
    return OK if verdict.valid else NEGATIVE


def _directory(body: Any, settings: Settings, args: argparse.Namespace) -> Any:
    """For a fine-tune, the registry read model (caught up) resolves its parent reference."""
    from sparktrainer.registry.directory import ReadModelDirectory

    config = body.get("config") if isinstance(body, dict) else None
    if not (isinstance(config, dict) and isinstance(config.get("model_id"), str)):
        return None
    return ReadModelDirectory(read_model(settings, args).conn)


@command
def cmd_cancel(args: argparse.Namespace) -> int:
    """Ask the trainer to stop a job; say what came of it: exit 0 asked, 1 ended or unknown."""
    from sparktrainer.registry.jobs import get_job

    settings = load_settings()
    job = read_model(settings, args).read(get_job, args.job_id)
    job_id = safe_id(job["job_id"] if job else args.job_id)
    tenant = acting_tenant(settings, args)
    if job is not None and job.get("tenant") not in (None, tenant):
        raise CliError(
            f"job {job_id} belongs to tenant '{job['tenant']}', not '{tenant}' "
            "(SPARKTRAINER_TENANT or --tenant): the trainers would ignore the cancel"
        )
    if job is not None and job["status"] in TERMINAL_STATUSES:
        _cancelled(args, job_id, False, f"has already ended ({job['status']}): not cancelled")
        return NEGATIVE
    event = CancelRequested(job_id=job_id, reason=args.reason, requested_by=SOURCE, tenant=tenant)
    run(publish(settings, encode(event, SOURCE)))
    if job is None:  # perhaps submitted a moment ago: the trainers keep the request
        days = settings.cancel_memory_s / 86400
        _cancelled(args, job_id, True, f"is not in the registry: the request is kept {days:g} "
                   "days and stops it if it was submitted before now")  # fmt: skip
        return NEGATIVE
    _cancelled(args, job_id, True, f"({job['status']}): cancel requested")
    return OK


def _cancelled(args: argparse.Namespace, job_id: str, requested: bool, what: str) -> None:
    if args.json:
        print_json({"job_id": job_id, "cancel_requested": requested, "said": what})
    else:
        out.print(f"job [bold]{job_id}[/] {escape(what)}")


@command
def cmd_jobs_list(args: argparse.Namespace) -> int:
    """Jobs from the read model, most recently updated first."""
    registry = read_model(load_settings(), args)
    from rich.table import Table

    from sparktrainer.registry.jobs import list_jobs

    page = registry.read(list_jobs, status=args.status, limit=args.limit, offset=args.offset)
    if args.json:
        print_json(page.as_dict("jobs"))
        return OK
    ids = [job["job_id"] for job in page.items]
    table = Table(id_column("job id", ids), "name", "tenant", "status", "epoch", "loss", "acc",
                  "updated")  # fmt: skip
    for job in page.items:
        p = job["progress"] or {}
        style = STATUS_STYLE.get(job["status"], "white")
        epoch = f"{p.get('epoch', '')}/{p.get('total_epochs', '')}" if p else ""
        table.add_row(
            escape(job["job_id"]),
            escape(job["name"] or ""),
            escape(job.get("tenant") or ""),
            f"[{style}]{job['status']}[/]",
            epoch,
            _num(p.get("loss")),
            _num(p.get("accuracy")),
            job["updated_at"][:19],
        )
    out.print(table)
    out.print(f"{len(page.items)} of {page.total} jobs")
    return OK


@command
def cmd_job_show(args: argparse.Namespace) -> int:
    """One job from the read model; exit 2 when unknown."""
    from sparktrainer.registry.jobs import get_job

    job = read_model(load_settings(), args).read(get_job, args.job_id)
    if job is None:
        raise CliError(f"No job '{args.job_id}' in the registry read model")
    if args.json:
        print_json(job)
        return OK
    print_fields(job)
    return OK


def _num(value: Any) -> str:
    return f"{value:.4g}" if isinstance(value, int | float) else ""
