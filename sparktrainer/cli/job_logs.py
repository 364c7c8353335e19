"""``sparktrainer jobs logs ID [--attempt N]``: an attempt's output, read from S3.

The log goes to stdout as stored (stdout, stderr and logging of the worker, secrets replaced,
head and tail within ``job_log_max_bytes``); which attempt it is goes to stderr. Exit 2 when
the job has no log yet (not started, or an id the store does not know).
"""

from __future__ import annotations

import argparse
import sys
from typing import Any

from sparktrainer.cli.common import OK, CliError, command, err, load_settings, safe_id


def add_logs_action(sub: Any) -> None:
    """Add ``jobs logs`` to the ``jobs`` group."""
    p = sub.add_parser("logs", help="a job attempt's stdout, stderr and logging (from S3)")
    p.add_argument("job_id", help="the job's whole id")
    p.add_argument("--attempt", type=int, help="this attempt (default: the latest with a log)")
    p.set_defaults(func=cmd_logs)


@command
def cmd_logs(args: argparse.Namespace) -> int:
    """Print the attempt's log."""
    from sparktrainer.storage.job_logs import logged_attempts, read_job_log
    from sparktrainer.storage.s3 import ObjectStore

    job_id = safe_id(args.job_id)
    store = ObjectStore.from_settings(load_settings())
    attempts = logged_attempts(store, job_id)
    if not attempts or (args.attempt is not None and args.attempt not in attempts):
        has = f"it has logs of attempts {attempts}" if attempts else "none is stored"
        raise CliError(f"No log of job '{job_id}' attempt {args.attempt or 'any'}: {has}")
    attempt = args.attempt or attempts[-1]
    data, size = read_job_log(store, job_id, attempt)
    err.print(f"job {job_id} attempt {attempt} of {attempts}: {size} bytes", highlight=False)
    sys.stdout.buffer.write(data)
    sys.stdout.buffer.flush()
    return OK
