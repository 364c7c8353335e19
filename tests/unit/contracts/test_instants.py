"""Times on the bus: every one an aware instant (naive ones refused at decode), and none later
than a few minutes past its record's broker time (``contracts/records.py`` check_instants)."""

from __future__ import annotations

import json
import typing
from datetime import UTC, datetime, timedelta

import pytest
from pydantic import BaseModel

from sparktrainer.contracts.catalog import EVENT_CLASSES
from sparktrainer.contracts.envelope import EnvelopeError, encode
from sparktrainer.contracts.event_base import Instant
from sparktrainer.contracts.events import CancelRequested
from sparktrainer.contracts.model_events import ModelDeleted
from sparktrainer.contracts.records import (
    Received,
    TimeAheadError,
    broker_time,
    check_instants,
    decode_received,
)
from sparktrainer.contracts.schedule_events import TrainerHeartbeat
from sparktrainer.contracts.topics import JOBS_CONTROL, MODELS_CHANGES, TRAINERS

NOW = datetime(2026, 12, 7, 15, 0, tzinfo=UTC)
NOW_MS = int(NOW.timestamp() * 1000)


def received(event: BaseModel, topic: str, timestamp_ms: int | None, **body: object) -> Received:
    """The record a producer would write for ``event``, its JSON fields overridden by ``body``."""
    record = encode(event, "test")
    value = {**json.loads(record.value), **body}
    return Received(topic, 0, 0, record.key, json.dumps(value).encode(), tuple(record.headers),
                    timestamp_ms)  # fmt: skip


def _holds_datetime(annotation: object) -> bool:
    return annotation is datetime or any(_holds_datetime(a) for a in typing.get_args(annotation))


def test_every_time_field_of_every_event_is_the_instant_type() -> None:
    instant_metadata = typing.get_args(Instant)[1:]
    times = {
        (cls.__name__, name): field
        for cls in EVENT_CLASSES.values()
        for name, field in cls.model_fields.items()
        if _holds_datetime(field.annotation)
    }
    assert ("ModelDeleted", "at") in times and ("TrainerHeartbeat", "at") in times
    for where, field in times.items():
        assert field.annotation is datetime, where  # not Optional, not a union of other things
        assert tuple(field.metadata) == instant_metadata, f"{where} is not an Instant"


def test_a_deletion_with_a_time_zone_less_at_is_refused_at_decode_with_a_clear_error() -> None:
    # The record: it killed every trainer's janitor with a TypeError when compared.
    rec = received(ModelDeleted(model_id="m1"), MODELS_CHANGES, NOW_MS, at="2026-12-07T14:00:00")
    with pytest.raises(EnvelopeError, match=r"at\n.*has no time zone: write an instant"):
        decode_received(rec)


def test_an_instant_with_an_offset_is_held_as_utc() -> None:
    rec = received(ModelDeleted(model_id="m1"), MODELS_CHANGES, NOW_MS,
                   at="2026-12-07T16:00:00+02:00")  # fmt: skip
    assert decode_received(rec).at == datetime(2026, 12, 7, 14, 0, tzinfo=UTC)


def test_a_heartbeat_dated_year_9999_is_refused() -> None:
    # The record: it counted as alive for good and froze the queue view.
    rec = received(TrainerHeartbeat(trainer_id="t9", group="g", classes=["cpu"], every_s=10),
                   TRAINERS, NOW_MS, at="9999-12-31T00:00:00Z")  # fmt: skip
    with pytest.raises(TimeAheadError, match=r"at 9999-12-31T00:00:00\+00:00 is more than 300 s"):
        decode_received(rec)


def test_a_broker_time_forged_ahead_does_not_move_the_limit() -> None:
    # A producer may set CreateTime: a record stamped 9999 is held to the reader's clock.
    forged_ms = int(datetime(9999, 1, 1, tzinfo=UTC).timestamp() * 1000)
    beat = TrainerHeartbeat(trainer_id="t9", group="g", classes=["cpu"], every_s=10,
                            at=datetime(9000, 1, 1, tzinfo=UTC))  # fmt: skip
    rec = received(beat, TRAINERS, forged_ms)
    assert broker_time(rec, NOW) == NOW
    with pytest.raises(TimeAheadError):
        check_instants(beat, rec, 300, now=NOW)


@pytest.mark.parametrize(
    ("ahead_s", "refused"), [(-86400 * 365 * 50, False), (0, False), (299, False), (301, True)]
)
def test_times_up_to_the_allowed_skew_pass_and_older_ones_always_do(
    ahead_s: float, refused: bool
) -> None:
    cancel = CancelRequested(job_id="j1", requested_at=NOW + timedelta(seconds=ahead_s))
    rec = received(cancel, JOBS_CONTROL, NOW_MS)
    if refused:
        with pytest.raises(TimeAheadError, match="requested_at"):
            check_instants(cancel, rec, 300, now=NOW + timedelta(hours=1))
    else:
        check_instants(cancel, rec, 300, now=NOW + timedelta(hours=1))


def test_a_record_with_no_timestamp_is_held_to_the_readers_clock() -> None:
    cancel = CancelRequested(job_id="j1", requested_at=NOW + timedelta(seconds=600))
    for missing in (None, -1):
        rec = received(cancel, JOBS_CONTROL, missing)
        assert broker_time(rec, NOW) == NOW
        with pytest.raises(TimeAheadError):
            check_instants(cancel, rec, 300, now=NOW)
    check_instants(cancel, received(cancel, JOBS_CONTROL, None), 900, now=NOW)  # the setting
