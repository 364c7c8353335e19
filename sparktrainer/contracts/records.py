"""The transport-neutral consumed record, and the rule that names the job a submission is.

Every reader of the log (the consumer runtime, the projector, replay, the CLI) hands records
around as :class:`Received`; the job-id rule lives here, beside it, so the validator and the
registry read model give a submission the same id without importing each other.
"""

from __future__ import annotations

import hashlib
import json
from collections import Counter
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

import structlog
from pydantic import BaseModel

from sparktrainer.contracts.envelope import REPLAY_HEADER, EnvelopeError, decode, header_map
from sparktrainer.contracts.events import JobValidated, RecordSource, derived_job_id
from sparktrainer.contracts.jobspec import check_safe_id
from sparktrainer.contracts.schedule_events import SweepValidated
from sparktrainer.settings import Settings

log = structlog.get_logger(__name__)
KEY_EXCERPT_CHARS = 256
# What makes two validated jobs the same job (when they were validated and why is not).
_NOT_CONTENT = {"warnings", "source", "validated_at"}
# How far an instant on an event may run ahead of its record's broker time, by default.
TIME_AHEAD_MAX_S: float = Settings.model_fields["event_time_ahead_max_s"].default


@dataclass(frozen=True)
class Received:
    """One consumed record, as a handler sees it (bytes exactly as they arrived)."""

    topic: str
    partition: int
    offset: int
    key: bytes | None
    value: bytes | None
    headers: tuple[tuple[str, bytes], ...]
    timestamp_ms: int | None

    def key_text(self) -> str | None:
        """The key as text (first bytes, undecodable ones replaced), or None."""
        if self.key is None:
            return None
        return self.key[:KEY_EXCERPT_CHARS].decode("utf-8", errors="replace")

    def source(self) -> RecordSource:
        """The record's coordinates, as events name them."""
        return RecordSource(
            topic=self.topic,
            partition=self.partition,
            offset=self.offset,
            key=self.key_text(),
            timestamp_ms=self.timestamp_ms,
        )


def key_job_id(rec: Received) -> str | None:
    """The record key when it is a valid job id (matched whole), else None."""
    key = rec.key_text()
    if not key:
        return None
    try:
        return check_safe_id(key)
    except ValueError:
        return None


def job_id_for(rec: Received, body: Any) -> tuple[str, list[str]]:
    """Body's job_id, else the record key, else one derived from the coordinates.

    Returns the id and the warnings about how it was chosen.
    """
    if isinstance(body, dict) and isinstance(body.get("job_id"), str):
        try:
            return check_safe_id(body["job_id"]), []
        except ValueError:
            pass  # reported by the request model; fall through to a usable id
    by_key = key_job_id(rec)
    if by_key is not None:
        return by_key, []
    key = rec.key_text()
    warnings = (
        [f"record key {key[:40]!r} is not a valid job id; a derived id is used"] if key else []
    )
    return derived_id(rec), warnings


def derived_id(rec: Received) -> str:
    """The id of a submission that names none: from where it first landed.

    A replayed record (``sparktrainer replay``) names its origin in a header; deriving from
    the replay's own offset would make a replay of the topic a second job and a second model.
    """
    origin = header_map(rec.headers).get(REPLAY_HEADER, "")
    topic, _, rest = origin.rpartition("/")
    topic, _, partition = topic.rpartition("/")
    if topic and partition.isdigit() and rest.isdigit():
        return derived_job_id(topic, int(partition), int(rest))
    return derived_job_id(rec.topic, rec.partition, rec.offset)


class TimeAheadError(EnvelopeError):
    """An event claims a time later than its record could have been written: a forged time."""


def decode_received(
    rec: Received,
    expected: type[BaseModel] | None = None,
    *,
    time_ahead_max_s: float = TIME_AHEAD_MAX_S,
) -> Any:
    """One of our events from a consumed record, accepted only on its own topic and only with
    no time past its record's broker time (:func:`check_instants`).

    Raises ``EnvelopeError`` for anything else (the caller skips or answers it).
    """
    event = decode(rec.value, rec.headers, expected, topic=rec.topic)
    check_instants(event, rec, time_ahead_max_s)
    return event


def broker_time(rec: Received, now: datetime | None = None) -> datetime:
    """When the broker took the record, as far as a reader can tell: its timestamp, but never
    later than the reader's own clock (a producer may set a record's CreateTime; none was
    written in the future), and the reader's clock when it has none."""
    clock = now or datetime.now(UTC)
    if rec.timestamp_ms is None or rec.timestamp_ms < 0:
        return clock
    try:
        stamped = datetime.fromtimestamp(rec.timestamp_ms / 1000, UTC)
    except (OverflowError, ValueError, OSError):  # past year 9999: no calendar holds it
        return clock
    return min(stamped, clock)


def check_instants(
    event: BaseModel, rec: Received, time_ahead_max_s: float, now: datetime | None = None
) -> None:
    """Refuse an event holding an instant more than ``time_ahead_max_s`` past its record's
    broker time: a heartbeat dated 9999 would count as alive for good, a cancel dated ahead
    would stop a job submitted later. Earlier times pass (a replayed record is old news)."""
    limit = broker_time(rec, now) + timedelta(seconds=time_ahead_max_s)
    for name, at in _instants(event):
        if at > limit:
            raise TimeAheadError(
                f"{name} {at.isoformat()} is more than {time_ahead_max_s:g} s past the record's "
                f"broker time {limit - timedelta(seconds=time_ahead_max_s):%Y-%m-%dT%H:%M:%SZ}"
            )


_LEAVES = (str, int, float, bool, type(None))  # hold no time: not walked (every reader's path)


def _instants(value: Any, path: str = "") -> Iterator[tuple[str, datetime]]:
    """Every time an event holds, with where (fields of nested models and lists included)."""
    if isinstance(value, datetime):
        yield path or "time", value
    elif isinstance(value, BaseModel):
        for name in type(value).model_fields:
            field = getattr(value, name)
            if not isinstance(field, _LEAVES):
                yield from _instants(field, f"{path}.{name}" if path else name)
    elif isinstance(value, list | tuple):
        for i, item in enumerate(value):
            if not isinstance(item, _LEAVES):
                yield from _instants(item, f"{path}[{i}]")


def content_fingerprint(job: JobValidated | SweepValidated) -> str:
    """The sha256 of what a job or sweep asks for (its tenant too): equal for a true duplicate,
    different for a takeover.

    The validator and the trainer both compute it from the JobValidated they hold, so a job
    redelivered, replayed or re-validated keeps its fingerprint; a sweep's, from its
    SweepValidated (the validator claims a sweep's id as it does a job's).
    """
    content = job.model_dump(mode="json", exclude=_NOT_CONTENT)
    canonical = json.dumps(content, sort_keys=True, separators=(",", ":"))
    return hashlib.sha256(canonical.encode()).hexdigest()


class SkipCounter:
    """Records a consumer could not use, by reason; each one logged as one ``record_skipped`` line.

    A skipped record is never retried and never stops its partition: the consumer moves on.
    """

    def __init__(self, consumer: str) -> None:
        self.consumer = consumer
        self.counts: Counter[str] = Counter()

    def skip(self, rec: Received, reason: str, error: object = "") -> None:
        """Count and log one skipped record."""
        self.counts[reason] += 1
        log.warning(
            "record_skipped",
            consumer=self.consumer,
            topic=rec.topic,
            partition=rec.partition,
            offset=rec.offset,
            reason=reason,
            error=str(error)[:300],
        )

    @property
    def total(self) -> int:
        """How many records were skipped."""
        return sum(self.counts.values())

    def __repr__(self) -> str:
        return f"SkipCounter({self.consumer}, {dict(self.counts)})"
