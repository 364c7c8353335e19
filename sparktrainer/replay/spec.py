"""What a replay selects: the spec (source, range, filters, destination) and the record tests.

Pure: no broker. The engine (``engine.py``) reads the ranges and sends what ``matches``.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from sparktrainer.contracts import topics as t
from sparktrainer.contracts.envelope import REPLAY_HEADER, header_map
from sparktrainer.contracts.events import derived_job_id
from sparktrainer.contracts.records import Received

Bound = int | dict[int, int] | None


class ReplayError(ValueError):
    """A replay that cannot run as asked; the message says what to change."""


@dataclass(frozen=True)
class ReplaySpec:
    """What to replay: a source topic, a range (offsets and/or time), filters, a destination."""

    source: str
    to: str | None = None
    partitions: tuple[int, ...] | None = None
    from_offset: Bound = None  # first offset replayed (inclusive), for all or per partition
    to_offset: Bound = None  # last offset replayed (inclusive)
    since_ms: int | None = None
    until_ms: int | None = None  # inclusive
    types: tuple[str, ...] = ()
    job_ids: tuple[str, ...] = ()
    keys: tuple[str, ...] = ()
    only: frozenset[tuple[int, int]] | None = None  # exact (partition, offset) picks
    rate_per_s: float | None = None
    dry_run: bool = False
    limit: int | None = None

    @property
    def destination(self) -> str:
        """Where records go: ``to``, or back onto the source topic."""
        return self.to or self.source


def bound_for(bound: Bound, partition: int) -> int | None:
    """The bound for one partition: the same for all, or that partition's own."""
    return bound.get(partition) if isinstance(bound, dict) else bound


@dataclass(frozen=True)
class Picked:
    """A record selected for replay, with the headers it will carry."""

    topic: str
    partition: int
    offset: int
    timestamp_ms: int
    key: bytes | None
    value: bytes | None
    headers: list[tuple[str, bytes]]
    ce_type: str | None

    @property
    def origin(self) -> str:
        """``topic/partition/offset``: the value of the replay header."""
        return f"{self.topic}/{self.partition}/{self.offset}"

    def as_dict(self, destination: str) -> dict[str, Any]:
        """What a dry run prints for this record."""
        return {
            "from": self.origin,
            "to": destination,
            "key": self.key.decode("utf-8", "replace") if self.key is not None else None,
            "type": self.ce_type,
            "timestamp": _when(self.timestamp_ms),
            "bytes": len(self.value or b""),
        }


def _when(timestamp_ms: int) -> str:
    """A record's timestamp as ISO text; producers may set any int64, which no calendar holds."""
    try:
        return datetime.fromtimestamp(timestamp_ms / 1000, UTC).isoformat()
    except (OverflowError, ValueError, OSError):
        return f"{timestamp_ms} ms since the epoch"


def _json_body(record: Received) -> Any:
    try:
        return json.loads(record.value) if record.value else None
    except (UnicodeDecodeError, ValueError, RecursionError):
        return None


def ce_type_of(record: Received) -> str | None:
    """The CloudEvents type: the ``ce_type`` header, or ``type`` of a structured-mode value."""
    found = header_map(record.headers).get("ce_type")
    if found is not None:
        return found
    body = _json_body(record)
    if isinstance(body, dict) and "specversion" in body and body.get("type") is not None:
        return str(body["type"])[:200]
    return None


def _job_ids_of(record: Received) -> set[str]:
    ids = set()
    if record.key:
        ids.add(record.key.decode("utf-8", "replace"))
    subject = header_map(record.headers).get("ce_subject")
    if subject:
        ids.add(subject)
    body = _json_body(record)
    if isinstance(body, dict):
        data: dict[str, Any] = body["data"] if isinstance(body.get("data"), dict) else body
        if isinstance(data.get("job_id"), str):
            ids.add(data["job_id"])
    if t.submission_tenant(record.topic) is not None and not record.key:  # any tenant's door
        ids.add(derived_job_id(record.topic, record.partition, record.offset))
    return ids


def matches(spec: ReplaySpec, record: Received) -> bool:
    """Whether a record in range passes the time window and every filter."""
    at = record.timestamp_ms or 0
    if spec.since_ms is not None and at < spec.since_ms:
        return False  # offsets_for_times may start early (tansu: batch-coarse)
    if spec.until_ms is not None and at > spec.until_ms:
        return False
    if spec.only is not None and (record.partition, record.offset) not in spec.only:
        return False
    if spec.keys and (record.key or b"").decode("utf-8", "replace") not in spec.keys:
        return False
    if spec.types and ce_type_of(record) not in spec.types:
        return False
    return not spec.job_ids or bool(_job_ids_of(record) & set(spec.job_ids))


def pick(record: Received) -> Picked:
    """The record as it will be sent: same key, value and headers, plus the replay header."""
    headers = [(k, bytes(v or b"")) for k, v in record.headers if k != REPLAY_HEADER]
    origin = f"{record.topic}/{record.partition}/{record.offset}"
    headers.append((REPLAY_HEADER, origin.encode()))
    return Picked(
        record.topic,
        record.partition,
        record.offset,
        record.timestamp_ms or 0,
        record.key,
        record.value,
        headers,
        ce_type_of(record),
    )
