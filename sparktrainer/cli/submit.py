"""``sparktrainer submit``: publish a job; with --wait, follow it to its end.

sparktrainer submit job.json [--wait] [--json]   # exit 0 completed, 1 rejected/failed/cancelled

A module of its own so that a submit loads only what sending its record needs (the job's
model, the settings, the envelope, aiokafka) before the record goes out; the follower and its
views load with --wait. ``bench/cli_start.py`` times process start -> the record's first byte.
"""

from __future__ import annotations

import argparse
import uuid
from functools import partial
from typing import TYPE_CHECKING, Any

from rich.markup import escape

from sparktrainer.cli.common import (
    OK,
    SOURCE,
    CliError,
    acting_tenant,
    add_tenant_option,
    command,
    err,
    load_settings,
    out,
    print_json,
    publish,
    read_json_file,
    run,
)

if TYPE_CHECKING:
    from sparktrainer.contracts.submission import JobSubmitted
    from sparktrainer.settings import Settings


def register(subparsers: Any) -> None:
    """Add submit."""
    p = subparsers.add_parser("submit", help="publish a job (a JSON file as the guide writes it)")
    p.add_argument("file", help="job JSON file, or - for stdin")
    p.add_argument("--wait", action="store_true", help="follow the job to its end")
    p.add_argument("--timeout", type=float, help="with --wait: give up after this many seconds")
    p.add_argument("--json", action="store_true", help="machine-readable output (NDJSON)")
    add_tenant_option(p)
    p.set_defaults(func=cmd_submit)


def _job_from(path: str) -> JobSubmitted:
    from pydantic import ValidationError

    from sparktrainer.contracts.submission import JobSubmitted

    body = read_json_file(path)
    if not isinstance(body, dict):
        raise CliError(f"{path}: a job must be a JSON object, got {type(body).__name__}")
    try:
        job = JobSubmitted.model_validate(body)
    except ValidationError as e:
        from sparktrainer.validation.messages import from_pydantic

        raise CliError(f"{path} is not a job: " + "; ".join(from_pydantic(e))) from e
    return job if job.job_id else job.model_copy(update={"job_id": str(uuid.uuid4())})


@command
def cmd_submit(args: argparse.Namespace) -> int:
    """Publish a job; with --wait, follow it and exit with its verdict."""
    from dataclasses import replace

    from sparktrainer.contracts.envelope import encode
    from sparktrainer.contracts.topics import submission_topic
    from sparktrainer.contracts.trace import TraceContext, traced

    job = _job_from(args.file)
    settings = load_settings()
    door = submission_topic(acting_tenant(settings, args))
    record = traced(replace(encode(job, SOURCE), topic=door), TraceContext.new())
    if not args.wait:
        run(publish(settings, record))
        _submitted(job.job_id or "", args.json)
        return OK

    async def submit_and_follow() -> int:
        from sparktrainer.cli.progress import follow_to_end
        from sparktrainer.client.follow import JobFollower

        async with JobFollower(settings, job.job_id or "") as follower:
            await follower.skip_history()  # this submission's events only
            await publish(settings, record)
            _submitted(job.job_id or "", args.json)
            return await follow_to_end(
                follower, args.json, args.timeout, partial(_name_version, settings)
            )

    return run(submit_and_follow())


async def _name_version(settings: Settings, model_id: str) -> str | None:
    """``NAME:VERSION`` the model became, from the CLI's read model caught up with the log
    (as ``models show`` reads it); None where the log cannot be read now."""
    from sparktrainer.cli.common import sync_read_model
    from sparktrainer.registry.models import get_model
    from sparktrainer.registry.store import RegistryStore

    db = settings.registry_db_path
    try:
        await sync_read_model(settings, db)
    except (CliError, OSError, TimeoutError) as e:
        err.print(f"[yellow]warning:[/] the model's version is not known yet: {escape(str(e))}")
        return None
    model = RegistryStore(db).read(get_model, model_id)
    if not model or not model.get("version"):
        return None
    return f"{model['registered_name']}:{model['version']}"


def _submitted(job_id: str, as_json: bool) -> None:
    if as_json:
        print_json({"event": "submitted", "job_id": job_id})
    else:
        out.print(f"submitted [bold]{job_id}[/]")
