"""Reading a job's logs back: which attempts left one, and one attempt's bytes from an offset.

The trainer uploads each attempt's output (``training/worker/joblogs.py``); the CLI (``jobs
logs``) and the API (``GET /api/jobs/{id}/logs``) read it here, straight from S3.
"""

from __future__ import annotations

import re

from sparktrainer.storage.layout import job_log_key, job_logs_prefix
from sparktrainer.storage.s3 import ObjectStore

_ATTEMPT = re.compile(r"attempt-(\d{1,6})\.log")


def logged_attempts(store: ObjectStore, job_id: str) -> list[int]:
    """The attempts of ``job_id`` whose log was uploaded, in order (empty: none yet)."""
    prefix = job_logs_prefix(job_id)
    found = (_ATTEMPT.fullmatch(key[len(prefix) :]) for key in store.list(prefix))
    return sorted(int(m.group(1)) for m in found if m)


def chosen_attempt(attempts: list[int], wanted: int | None) -> int | None:
    """The attempt asked for when it has a log, else the latest (None: no log to show)."""
    if wanted is not None:
        return wanted if wanted in attempts else None
    return attempts[-1] if attempts else None


def no_log_reason(job_id: str, attempts: list[int], wanted: int | None) -> str:
    """Why ``chosen_attempt`` found nothing to show, for the CLI and the API alike."""
    has = f"it has logs of attempts {attempts}" if attempts else "none is stored yet"
    return f"No log of job '{job_id}' attempt {wanted or 'any'}: {has}"


def read_job_log(
    store: ObjectStore, job_id: str, attempt: int, offset: int = 0
) -> tuple[bytes, int]:
    """Attempt ``attempt``'s log from byte ``offset``, and its whole size (ObjectNotFound when
    it has none)."""
    key = job_log_key(job_id, attempt)
    size = store.size(key)
    if offset >= size:
        return b"", size
    return b"".join(store.stream(key, offset=offset)), size
