"""What every event we own shares: the strict base class, deterministic ids, the time."""

from __future__ import annotations

import hashlib
import uuid
from datetime import UTC, datetime
from typing import Annotated, ClassVar

from pydantic import AfterValidator, BaseModel, ConfigDict

_NAMESPACE = uuid.UUID("6f1c7a52-6b1e-4d5e-9a59-7d0c1c2b5e11")


def now() -> datetime:
    """The current time, timezone-aware UTC."""
    return datetime.now(UTC)


def _in_utc(at: datetime) -> datetime:
    """An aware time, as UTC; a naive one, or one UTC cannot hold, is not an instant."""
    if at.tzinfo is None or at.utcoffset() is None:
        raise ValueError(
            "has no time zone: write an instant with its offset, e.g. 2026-01-01T05:00:00Z"
        )
    try:
        return at.astimezone(UTC)
    except OverflowError as e:  # 0001-01-01T00:00+05:00, 9999-12-31T23:59-05:00
        raise ValueError("is outside the years 1 to 9999 once in UTC") from e


# Every time on an event, the one type of every time field on the bus: an aware instant, held
# as UTC, so that any two compare and every one prints. A naive time is refused with the record
# (read as UTC it meant whatever its writer's clock meant; compared with an aware one it raised
# TypeError in whoever compared it). How far ahead of its record's broker time an instant may
# be is checked where records are read (``contracts/records.py`` ``check_instants``).
Instant = Annotated[datetime, AfterValidator(_in_utc)]


def deterministic_id(*parts: object) -> str:
    """A stable UUID from parts, so a retried event carries the same id."""
    return str(uuid.uuid5(_NAMESPACE, "/".join(str(p) for p in parts)))


def derived_job_id(topic: str, partition: int, offset: int) -> str:
    """The job id for a submission that named none: stable across redeliveries."""
    digest = hashlib.sha256(f"{topic}/{partition}/{offset}".encode()).hexdigest()
    return f"job-{digest[:20]}"


class Event(BaseModel):
    """Base of all events we own: strict (no NaN or infinity), with a type and a home topic."""

    # Validators are built on first use: a CLI command pays only for the events it touches.
    model_config = ConfigDict(extra="forbid", allow_inf_nan=False, defer_build=True)

    ce_type: ClassVar[str]
    topic: ClassVar[str]

    def subject(self) -> str:
        """The CloudEvents subject and Kafka key: the job (or model) this event is about."""
        return str(getattr(self, "job_id"))  # noqa: B009 - every event names its job

    def event_id(self) -> str:
        """A deterministic event id; subclasses add what makes a retry the same event."""
        return deterministic_id(self.ce_type, self.subject())

    def partition_key(self) -> str:
        """The Kafka key: what must stay in order lands in one partition (the subject here)."""
        return self.subject()

    def home_topic(self) -> str:
        """The topic this event is sent to (a validated job's depends on its route)."""
        return self.topic

    @classmethod
    def topics(cls) -> tuple[str, ...]:
        """Every topic events of this type live on (for the AsyncAPI document)."""
        return (cls.topic,)


class RecordSource(BaseModel):
    """Where a record came from on Kafka: enough to find it again."""

    model_config = ConfigDict(extra="forbid")

    topic: str
    partition: int
    offset: int
    key: str | None = None
    timestamp_ms: int | None = None
