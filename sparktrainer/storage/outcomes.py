"""Job outcome records in S3: how a redelivered job or a late cancel learns a job has ended.

``jobs/{job_id}/outcome.json`` is written once a job ends, before its terminal event is sent,
and holds those events; ``jobs/{job_id}/attempt.json`` counts the starts of the job (and
when it gave way to a higher priority);
``jobs/{job_id}/claim.json`` holds the fingerprint of the job or sweep that owns the id, and
its tenant and kind (who owns it: the trainer and the sweep controller read it).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from sparktrainer.contracts.jobspec import check_safe_id
from sparktrainer.contracts.tenants import DEFAULT_TENANT
from sparktrainer.errors import ObjectNotFound
from sparktrainer.storage.s3 import ObjectStore

JOBS = "jobs"
GAVE_WAY_KEPT = 16  # the latest preemptions of a job kept in its attempt record


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
    state = _attempts(store, job_id)
    state["attempt"] += 1
    store.put_json(_key(job_id, "attempt.json"), state)
    return int(state["attempt"])


def _attempts(store: ObjectStore, job_id: str) -> dict[str, Any]:
    """The starts counted so far, how many of them were handed over (preempted) and when the
    job gave way to a higher priority (``gave_way_ms``, wall-clock ms, the latest
    ``GAVE_WAY_KEPT``)."""
    try:
        stored = store.get_json(_key(job_id, "attempt.json"))
        times = stored.get("gave_way_ms", [])
        return {"attempt": int(stored["attempt"]), "handed_over": int(stored.get("handed_over", 0)),
                "gave_way_ms": [int(t) for t in times][-GAVE_WAY_KEPT:]}  # fmt: skip
    except (ObjectNotFound, KeyError, ValueError, TypeError, AttributeError):
        return {"attempt": 0, "handed_over": 0, "gave_way_ms": []}


def handovers(store: ObjectStore, job_id: str) -> int:
    """How many starts of this job were handed over (not the job's fault: not held against it)."""
    return int(_attempts(store, job_id)["handed_over"])


def gave_way_times(store: ObjectStore, job_id: str) -> list[int]:
    """When the job gave way to a higher priority (wall-clock ms), by whichever trainer: the
    preemption bound holds across trainers. A store that cannot be read raises StorageError."""
    return list(_attempts(store, job_id)["gave_way_ms"])


def recorded_attempt(store: ObjectStore, job_id: str) -> int | None:
    """The number of the job's latest start as recorded: None when there is no record, 0 when
    it is unreadable (no start can show it is that one). A store that cannot be read raises
    StorageError."""
    try:
        stored = store.get_json(_key(job_id, "attempt.json"))
    except ObjectNotFound:
        return None
    except ValueError:
        return 0
    try:
        return int(stored["attempt"])
    except (KeyError, ValueError, TypeError):
        return 0


def hand_over(
    store: ObjectStore, job_id: str, attempt: int, gave_way_ms: int | None = None
) -> None:
    """Count a start that was handed over, not lost (preempted, a rebalance, a graceful stop):
    it is not held against the job's attempt limit. Its number stays used, so numbers only grow
    (an attempt's fence, ``storage/fencing.py``) and every attempt's events stay apart. Only
    while ``attempt`` is still the latest start: a stale one changes nothing. ``gave_way_ms``:
    it gave way to a higher priority then (counted against the preemption bound)."""
    state = _attempts(store, job_id)
    if state["attempt"] == attempt:
        state["handed_over"] += 1
        if gave_way_ms is not None:
            state["gave_way_ms"] = [*state["gave_way_ms"], gave_way_ms][-GAVE_WAY_KEPT:]
        store.put_json(_key(job_id, "attempt.json"), state)


@dataclass(frozen=True)
class IdClaim:
    """Who owns a job id: the content fingerprint, the tenant, and whether a job or a sweep."""

    fingerprint: str
    tenant: str = DEFAULT_TENANT  # claims written before tenants: the default tenant's
    kind: str = "job"  # "job" or "sweep"


def claimed_by(store: ObjectStore, job_id: str) -> IdClaim | None:
    """The claim on ``job_id`` (None: nobody holds it; an unreadable claim counts as none)."""
    try:
        held = store.get_json(_key(job_id, "claim.json"))
    except (ObjectNotFound, ValueError):
        return None
    if not isinstance(held, dict) or not isinstance(held.get("fingerprint"), str):
        return None
    tenant, kind = held.get("tenant", DEFAULT_TENANT), held.get("kind", "job")
    return IdClaim(
        fingerprint=held["fingerprint"],
        tenant=tenant if isinstance(tenant, str) else DEFAULT_TENANT,
        kind=kind if isinstance(kind, str) else "job",
    ) if held["fingerprint"] else None  # fmt: skip


def claim_holder(store: ObjectStore, job_id: str) -> str | None:
    """The content fingerprint of the job that owns ``job_id`` (None: nobody yet)."""
    held = claimed_by(store, job_id)
    return held.fingerprint if held else None


def claim(
    store: ObjectStore,
    job_id: str,
    fingerprint: str,
    tenant: str = DEFAULT_TENANT,
    kind: str = "job",
) -> str | None:
    """Take ``job_id`` for the job (or sweep) with this content fingerprint, unless another has it.

    Returns None when the id is this one's (claimed now, or earlier by the same content) and
    the other's fingerprint when the id is taken. The claim records ``tenant`` and ``kind``. Two
    different jobs claiming one new id in the same instant may both succeed (S3 has no
    compare-and-set here); the later write wins and its trainer run is the one the id keeps.
    """
    held = claim_holder(store, job_id)
    if held is not None:
        return None if held == fingerprint else held
    record = {"fingerprint": fingerprint, "tenant": tenant, "kind": kind}
    store.put_json(_key(job_id, "claim.json"), record)
    return None
