"""``sparktrainer jobs logs ID [--attempt N] [--follow]``: an attempt's output, read from S3.

The log goes to stdout as stored (stdout, stderr and logging of the worker, secrets replaced,
head and tail within ``job_log_max_bytes``); which attempt it is goes to stderr. Exit 2 when
the job has no log yet (not started, or an id the store does not know). ``--follow`` prints
what each upload adds, moves on to a newer attempt, and returns once the job's end is recorded
(or after ``--timeout``, exit 4).
"""

from __future__ import annotations

import argparse
import sys
import time
from typing import TYPE_CHECKING, Any

from sparktrainer.cli.common import (
    OK,
    TIMED_OUT,
    CliError,
    add_db_options,
    command,
    err,
    load_settings,
    read_model,
    safe_id,
)

if TYPE_CHECKING:
    from sparktrainer.settings import Settings
    from sparktrainer.storage.s3 import ObjectStore

POLL_S = 1.0  # S3 is asked this often while following (an upload comes every few seconds)


def add_logs_action(sub: Any) -> None:
    """Add ``jobs logs`` to the ``jobs`` group."""
    p = sub.add_parser("logs", help="a job attempt's stdout, stderr and logging (from S3)")
    p.add_argument("job_id", help="the job's id or a unique prefix of it")
    p.add_argument("--attempt", type=int, help="this attempt (default: the latest with a log)")
    p.add_argument("--follow", action="store_true", help="print what is added until the job ends")
    p.add_argument("--timeout", type=float, help="with --follow: give up after this many seconds")
    add_db_options(p)  # read only for a prefix: a whole id goes to S3 straight away
    p.set_defaults(func=cmd_logs)


@command
def cmd_logs(args: argparse.Namespace) -> int:
    """Print the attempt's log (and, following, what comes after it)."""
    from sparktrainer.storage.job_logs import (
        chosen_attempt,
        logged_attempts,
        no_log_reason,
        read_job_log,
    )
    from sparktrainer.storage.s3 import ObjectStore  # S3's client loads only for this command

    settings = load_settings()
    store = ObjectStore.from_settings(settings)
    job_id = _whole_id(settings, args, store, safe_id(args.job_id))
    if args.follow:
        return _follow(store, job_id, args.attempt, args.timeout)
    attempts = logged_attempts(store, job_id)
    attempt = chosen_attempt(attempts, args.attempt)
    if attempt is None:
        raise CliError(no_log_reason(job_id, attempts, args.attempt))
    data, size = read_job_log(store, job_id, attempt)
    err.print(f"job {job_id} attempt {attempt} of {attempts}: {size} bytes", highlight=False)
    _write(data)
    return OK


def _whole_id(settings: Settings, args: argparse.Namespace, store: ObjectStore, job_id: str) -> str:
    """``job_id`` when S3 holds logs under it; else the job a unique prefix of it names."""
    from sparktrainer.registry.jobs import get_job
    from sparktrainer.storage.job_logs import logged_attempts

    if logged_attempts(store, job_id):
        return job_id
    if args.follow:  # the job may not have started: read the model as last synced, no wait
        args.no_sync = True
    known = read_model(settings, args).read(get_job, job_id)
    return str(known["job_id"]) if known else job_id


def _write(data: bytes) -> None:
    sys.stdout.buffer.write(data)
    sys.stdout.buffer.flush()


def _follow(store: ObjectStore, job_id: str, wanted: int | None, timeout_s: float | None) -> int:
    """Poll the log until the job's end is recorded; a newer attempt is printed from its start.

    A log past its cap is replaced by its head and tail at each upload: following shows no
    more of it then (read it whole once the job ended).
    """
    from sparktrainer.storage.job_logs import chosen_attempt, logged_attempts, read_job_log
    from sparktrainer.storage.outcomes import read_outcome

    deadline = None if timeout_s is None else time.monotonic() + timeout_s
    shown, offset = None, 0
    while deadline is None or time.monotonic() < deadline:
        ended = read_outcome(store, job_id) is not None  # first: the log is whole by then
        attempt = chosen_attempt(logged_attempts(store, job_id), wanted)
        if attempt is not None:
            if attempt != shown:
                err.print(f"job {job_id} attempt {attempt}", highlight=False)
                shown, offset = attempt, 0
            data, size = read_job_log(store, job_id, attempt, offset)
            _write(data)
            offset = max(offset, size)
        if ended:
            return OK
        time.sleep(POLL_S)
    err.print(f"[yellow]gave up after {timeout_s:g} s: the job has not ended[/]")
    return TIMED_OUT
