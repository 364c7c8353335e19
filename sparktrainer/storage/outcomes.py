"""Job outcome records in S3: how a redelivered job or a late cancel learns a job has ended.

``jobs/{job_id}/outcome.json`` is written once a job ends, before its terminal event is sent,
and holds those events; ``jobs/{job_id}/attempt.json`` counts trainer takeovers.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from sparktrainer.contracts.jobspec import check_safe_id
from sparktrainer.errors import ObjectNotFound
from sparktrainer.storage.s3 import ObjectStore

JOBS = "jobs"


def _key(job_id: str, name: str) -> str:
    return f"{JOBS}/{check_safe_id(job_id)}/{name}"


@dataclass(frozen=True)
class StoredOutcome:
    """A job's end as recorded: its status and the events that announced it."""

    status: str
    events: list[dict[str, Any]]  # [{"ce_type": ..., "data": {...}}], in send order


def write_outcome(store: ObjectStore, job_id: str, outcome: StoredOutcome) -> None:
    """Record that a job ended (idempotent: the same job ends the same way)."""
    store.put_json(
        _key(job_id, "outcome.json"), {"status": outcome.status, "events": outcome.events}
    )


def read_outcome(store: ObjectStore, job_id: str) -> StoredOutcome | None:
    """The recorded end of a job, or None while it has not ended."""
    try:
        data = store.get_json(_key(job_id, "outcome.json"))
    except ObjectNotFound:
        return None
    return StoredOutcome(status=str(data["status"]), events=list(data.get("events", [])))


def next_attempt(store: ObjectStore, job_id: str) -> int:
    """Count one more start of this job and return its number (1 for the first)."""
    try:
        attempt = int(store.get_json(_key(job_id, "attempt.json"))["attempt"]) + 1
    except (ObjectNotFound, KeyError, ValueError, TypeError):
        attempt = 1
    store.put_json(_key(job_id, "attempt.json"), {"attempt": attempt})
    return attempt
