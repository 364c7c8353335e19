"""The issue's forged heartbeat, through the projector on the in-memory broker: a beat dated
year 9999 is skipped and counted (time_ahead), so the trainer's later beats still count (it
used to stand for good: every later beat was older)."""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta

import pytest

from sparktrainer.bus.kafka import make_producer, send
from sparktrainer.contracts.envelope import encode
from sparktrainer.contracts.schedule_events import TrainerHeartbeat
from sparktrainer.contracts.topics import TRAINERS
from sparktrainer.registry.queue import live_trainers
from sparktrainer.registry.runner import Projector
from sparktrainer.settings import Settings

pytestmark = pytest.mark.memory


def beat(**fields: object) -> TrainerHeartbeat:
    return TrainerHeartbeat.model_validate(
        {"trainer_id": "t1", "group": "g", "classes": ["cpu"], "every_s": 10, **fields}
    )


async def test_a_heartbeat_dated_9999_is_skipped_and_later_beats_still_count(
    memory_settings: Settings, tmp_path: object
) -> None:
    producer = make_producer(memory_settings)
    await producer.start()
    try:
        await send(producer, encode(beat(), "trainer"))
        forged = encode(beat(), "intruder")
        body = {**json.loads(forged.value), "at": "9999-12-31T00:00:00Z"}
        await send(producer, type(forged)(forged.topic, forged.key, json.dumps(body).encode(),
                                          forged.headers))  # fmt: skip
        await send(producer, encode(beat(stopping=True), "trainer"))  # its last beat
    finally:
        await producer.stop()
    projector = Projector(memory_settings, ":memory:", topics=(TRAINERS,))
    await projector.start()
    try:
        await projector.catch_up(timeout_s=10)
        assert projector.skips.counts["time_ahead"] == 1
        soon = datetime.now(UTC) + timedelta(seconds=1)
        assert live_trainers(projector.conn, soon) == []  # the stopping beat was folded
    finally:
        await projector.close()
