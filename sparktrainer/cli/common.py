"""What the CLI commands share: settings, exit codes, JSON output, the local read model.

Exit codes: 0 success (a job completed, a job is valid), 1 a negative verdict (rejected,
failed, cancelled, invalid), 2 bad input (unreadable file, bad arguments, unknown id),
3 Kafka or S3 unreachable, 4 timed out waiting, 130 interrupted.
"""

from __future__ import annotations

import asyncio
import functools
import json
import os
import sys
from collections.abc import Callable, Coroutine, Iterable
from pathlib import Path
from typing import TYPE_CHECKING, Any, TypeVar

from rich.console import Console
from rich.markup import escape

from sparktrainer.registry.ids import AmbiguousId
from sparktrainer.settings import Settings

if TYPE_CHECKING:
    from rich.table import Column

    from sparktrainer.contracts.envelope import OutRecord
    from sparktrainer.registry.store import RegistryStore

T = TypeVar("T")
OK, NEGATIVE, BAD_INPUT, UNAVAILABLE, TIMED_OUT = 0, 1, 2, 3, 4

# Piped or logged output (make demo, CI) gets room for ids instead of rich's 80-column default.
out = Console(soft_wrap=True, width=None if sys.stdout.isatty() else 160)
err = Console(stderr=True, soft_wrap=True)


SOURCE = "sparktrainer/cli"  # the CloudEvents source of what the CLI publishes


class CliError(Exception):
    """A command that cannot go on: a message for the user and the exit code."""

    def __init__(self, message: str, code: int = BAD_INPUT) -> None:
        super().__init__(message)
        self.code = code


def command(func: Callable[[Any], int]) -> Callable[[Any], int]:
    """A CLI command: quiet logs (warnings up) and a CliError printed as one line + exit code."""

    @functools.wraps(func)
    def wrapper(args: Any) -> int:
        from sparktrainer.logging import configure

        configure(os.environ.get("SPARKTRAINER_LOG_LEVEL", "WARNING"))
        try:
            return func(args)
        except (CliError, AmbiguousId) as e:
            err.print(f"[red]error:[/] {escape(str(e))}", highlight=False)
            return getattr(e, "code", BAD_INPUT)
        except BrokenPipeError:  # e.g. `| head`: stop quietly (Python's documented recipe)
            os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
            return NEGATIVE

    return wrapper


def load_settings() -> Settings:
    """Settings from the environment, with addresses of a running embedded stack filled in."""
    settings = Settings()
    if settings.kafka_bootstrap_servers and settings.s3_endpoint:
        return settings  # both servers given: no stack to ask, so none of its code to load
    from sparktrainer.cli.stack import stack_settings  # the embedded stack's code: when needed

    return stack_settings()


def run(coro: Coroutine[Any, Any, T]) -> T:
    """Run a coroutine; Kafka and S3 being unreachable becomes a :class:`CliError`."""
    from aiokafka.errors import KafkaConnectionError, KafkaError

    from sparktrainer.errors import ConfigurationError, StorageError

    try:
        return asyncio.run(coro)
    except (KafkaConnectionError, ConfigurationError, StorageError) as e:
        raise CliError(f"{type(e).__name__}: {e}", UNAVAILABLE) from e
    except KafkaError as e:
        raise CliError(f"Kafka error: {type(e).__name__}: {e}", UNAVAILABLE) from e


def safe_id(value: str) -> str:
    """A job or model id that is safe in a key or a path; a CliError (exit 2) otherwise."""
    from sparktrainer.contracts.jobspec import check_safe_id

    try:
        return check_safe_id(value)
    except ValueError as e:
        raise CliError(str(e)) from e


async def publish(settings: Settings, record: OutRecord) -> None:
    """Send one event with a producer of its own and wait for the broker's ack."""
    from sparktrainer.bus.kafka import make_producer, send

    producer = make_producer(settings)
    await producer.start()
    try:
        await send(producer, record)
    finally:
        await producer.stop()


def print_json(obj: Any) -> None:
    """One JSON document on one line (NDJSON when called repeatedly)."""
    sys.stdout.write(json.dumps(obj, default=str) + "\n")
    sys.stdout.flush()


def printed_as_json(args: Any, obj: Any) -> bool:
    """With --json, print ``obj`` as one JSON line (True); else nothing (False)."""
    if getattr(args, "json", False):
        print_json(obj)
        return True
    return False


def known(found: T | None, what: str, ident: str) -> T:
    """``found``, or exit 2 for an id the read model does not know."""
    if found is None:
        raise CliError(f"No {what} '{ident}' in the registry read model")
    return found


def print_fields(record: dict[str, Any], names: Iterable[str] | None = None) -> None:
    """``name: value`` lines for the record's non-empty fields (all, or ``names`` in order)."""
    for name in names if names is not None else record:
        value = record.get(name)
        if value not in (None, [], {}):
            out.print(f"[bold]{name}[/]: {escape(_shown(value))}", highlight=False)


def _shown(value: Any) -> str:
    """A field as a person reads it: JSON for dicts and lists (not Python's repr), text as is."""
    if isinstance(value, dict | list | tuple | bool):
        return json.dumps(value, ensure_ascii=False, default=str)
    return str(value)


def read_json_file(path: str) -> Any:
    """A JSON file's content, or a CliError that says what is wrong with it."""
    try:
        text = sys.stdin.read() if path == "-" else Path(path).read_text()
    except OSError as e:
        raise CliError(f"Cannot read {path}: {e.strerror or e}") from e
    try:
        return json.loads(text)
    except json.JSONDecodeError as e:
        raise CliError(f"{path} is not valid JSON: {e}") from e


def add_db_options(parser: Any) -> None:
    """--db and --no-sync for commands that read the registry read model."""
    parser.add_argument("--db", help="read-model SQLite file (default: SPARKTRAINER_REGISTRY_DB)")
    parser.add_argument(
        "--no-sync",
        action="store_true",
        help="read the local read model as it is, without catching up with the log first",
    )


def add_tenant_option(parser: Any) -> None:
    """--tenant: which tenant's door the command writes (default SPARKTRAINER_TENANT)."""
    parser.add_argument(
        "--tenant",
        help="the tenant to act for (default: SPARKTRAINER_TENANT, else 'default'); on a "
        "cluster the Kafka ACLs let a user write only its own tenant's door",
    )


def acting_tenant(settings: Settings, args: Any = None) -> str:
    """The tenant a command acts for: --tenant, else ``SPARKTRAINER_TENANT``; one the tenants
    file lists (on a cluster the Kafka ACLs decide what it may write, not this choice)."""
    from sparktrainer.contracts.tenants import load_tenants

    tenant = getattr(args, "tenant", None) or settings.tenant
    try:
        known = load_tenants(settings.tenants_file)
    except ValueError as e:
        raise CliError(str(e)) from e
    if known.get(tenant) is None:
        raise CliError(
            f"--tenant / SPARKTRAINER_TENANT '{tenant[:64]}' is not a tenant of the tenants "
            f"file (tenants: {', '.join(known.names)})"
        )
    return str(tenant)


async def sync_read_model(settings: Settings, db: Path) -> None:
    """Fold what is new in the log into the read model at ``db`` (see ``read_model``)."""
    from sparktrainer.registry.runner import Projector

    projector = Projector(settings, db, create_topics=False)
    try:
        await projector.start()
        await projector.catch_up(timeout_s=120)
    finally:
        await projector.close()


def read_model(settings: Settings, args: Any) -> RegistryStore:
    """The registry read model, first brought up to date with the log (unless --no-sync).

    The CLI folds the log into a local SQLite file itself, the same way the projector does:
    offsets live in that file, so a catch-up only reads what is new, and a projector replica
    writing the same file at the same time changes nothing (each record is applied once).
    """
    from sparktrainer.registry.store import RegistryStore  # sqlite only: import when used

    db = Path(args.db) if args.db else settings.registry_db_path
    if not args.no_sync:
        try:
            run(sync_read_model(settings, db))
        except CliError as e:
            err.print(f"[yellow]warning:[/] {e}; showing the read model as last synced")
    return RegistryStore(db)


def known_job(settings: Settings, args: Any) -> dict[str, Any]:
    """The job ``args.job_id`` names (its id or a unique prefix), from the synced read model.

    Exit 2 when the log holds no such job: waiting for it would wait forever.
    """
    from sparktrainer.registry.jobs import get_job

    job = read_model(settings, args).read(get_job, args.job_id)
    if job is None:
        raise CliError(
            f"No job '{args.job_id}' in the registry read model (`sparktrainer jobs list` "
            "shows the jobs it knows)"
        )
    return job


def id_column(header: str, ids: Iterable[str]) -> Column:
    """A table column of ids, never cut: as wide as the longest (people copy them whole)."""
    from rich.table import Column

    return Column(header, no_wrap=True, min_width=max((len(i) for i in ids), default=0))


def short_type(ce_type: str) -> str:
    """``io.sparktrainer.job.progress.v1`` -> ``job.progress``."""
    return ce_type.removeprefix("io.sparktrainer.").rsplit(".v", 1)[0]
