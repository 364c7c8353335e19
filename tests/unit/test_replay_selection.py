"""Replay's pure parts: times, offset bounds, record filters and the replay header."""

from __future__ import annotations

from datetime import UTC, datetime

import pytest

from sparktrainer.cli.replay import parse_bound, parse_time
from sparktrainer.contracts.envelope import REPLAY_HEADER
from sparktrainer.contracts.events import derived_job_id
from sparktrainer.contracts.records import Received
from sparktrainer.replay.spec import ReplayError, ReplaySpec, matches, pick

NOW = datetime(2025, 6, 1, 12, 0, tzinfo=UTC)
MS = int(NOW.timestamp() * 1000)


def record(
    offset: int = 7,
    key: bytes | None = b"job-1",
    value: bytes = b'{"job_id": "job-1"}',
    headers: tuple = (("ce_type", b"io.x.v1"),),
    ts: int = MS,
    topic: str = "t",
):
    return Received(topic, 0, offset, key, value, headers, ts)


@pytest.mark.parametrize(
    ("text", "ms"),
    [
        ("1h", MS - 3_600_000),
        ("90s", MS - 90_000),
        ("15m", MS - 900_000),
        ("2d", MS - 172_800_000),
        ("1.5h", MS - 5_400_000),
        ("now", MS),
        ("2025-06-01T10:00Z", MS - 7_200_000),
        ("2025-06-01T10:00:00", MS - 7_200_000),
        ("2025-06-01T12:00:00+02:00", MS - 7_200_000),
    ],
)
def test_parse_time(text: str, ms: int) -> None:
    assert parse_time(text, NOW) == ms


@pytest.mark.parametrize("text", ["yesterday", "1y", "-1h", ""])
def test_parse_time_rejects_nonsense(text: str) -> None:
    with pytest.raises(ReplayError, match="not a time"):
        parse_time(text, NOW)


def test_parse_bound() -> None:
    assert parse_bound("5") == 5
    assert parse_bound("0:5,2:7") == {0: 5, 2: 7}
    for bad in ("-1", "a", "0:x", "0:-2", "1:2:3"):
        with pytest.raises(ReplayError, match="not an offset"):
            parse_bound(bad)


def test_time_window_uses_the_record_timestamp() -> None:
    spec = ReplaySpec(source="t", since_ms=MS, until_ms=MS + 10)
    assert matches(spec, record(ts=MS)) and matches(spec, record(ts=MS + 10))
    assert not matches(spec, record(ts=MS - 1)) and not matches(spec, record(ts=MS + 11))


def test_filters() -> None:
    assert matches(ReplaySpec(source="t", types=("io.x.v1",)), record())
    assert not matches(ReplaySpec(source="t", types=("io.y.v1",)), record())
    structured = record(headers=(), value=b'{"specversion": "1.0", "type": "io.y.v1", "data": {}}')
    assert matches(ReplaySpec(source="t", types=("io.y.v1",)), structured)
    assert matches(ReplaySpec(source="t", keys=("job-1",)), record())
    assert not matches(ReplaySpec(source="t", keys=("job-2",)), record())
    assert matches(ReplaySpec(source="t", job_ids=("job-1",)), record(key=None))  # from the body
    keyless = record(key=None, value=b'{"type": "train"}', topic="sparktrainer.jobs.submitted")
    derived = derived_job_id("sparktrainer.jobs.submitted", 0, 7)
    assert matches(ReplaySpec(source="t", job_ids=(derived,)), keyless)
    assert matches(ReplaySpec(source="t", only=frozenset({(0, 7)})), record())
    assert not matches(ReplaySpec(source="t", only=frozenset({(0, 8)})), record())
    assert matches(ReplaySpec(source="t", job_ids=("x",)), record(value=b"\xff")) is False


def test_pick_keeps_everything_and_sets_one_replay_header() -> None:
    again = record(headers=(("ce_type", b"io.x.v1"), (REPLAY_HEADER, b"older/0/1")))
    picked = pick(again)
    assert (picked.key, picked.value) == (again.key, again.value)
    assert picked.headers == [("ce_type", b"io.x.v1"), (REPLAY_HEADER, b"t/0/7")]
    assert picked.as_dict("dest")["from"] == "t/0/7"


def test_pick_survives_a_header_without_a_value() -> None:
    """Kafka allows a header whose value is null; replay copies it as empty."""
    picked = pick(record(headers=(("ce_type", None), ("x-empty", b""))))
    assert picked.headers == [("ce_type", b""), ("x-empty", b""), (REPLAY_HEADER, b"t/0/7")]
