"""A record handed back (a job preempted on a stopping trainer) is never committed: the
runtime stops, and the group's next member runs the record again (in-memory broker)."""

from __future__ import annotations

import asyncio
from collections.abc import Callable

import pytest

from sparktrainer.bus.runtime import ConsumerRuntime
from sparktrainer.contracts.envelope import OutRecord
from sparktrainer.contracts.records import Received
from sparktrainer.errors import HandedBack
from sparktrainer.settings import Settings
from tests.conftest import KafkaHelper

pytestmark = pytest.mark.memory
WAIT_S = 30.0


async def test_a_handed_back_record_stays_uncommitted_for_the_next_member(
    memory_settings: Settings, unique: Callable[[str], str]
) -> None:
    helper = KafkaHelper(memory_settings, unique)
    try:
        source, group = await helper.create_topic(), unique("group")
        await helper.produce(source, "job", key="k")
        seen: list[str] = []

        async def hand_back(rec: Received) -> list[OutRecord]:
            seen.append("first")
            raise HandedBack("trainer stopping")

        first = ConsumerRuntime(memory_settings, name="first", group_id=group,
                                topics=(source,), handler=hand_back)  # fmt: skip
        stats = await asyncio.wait_for(first.run(), WAIT_S)  # it stops on its own
        assert seen == ["first"] and stats.records_done == 0 and stats.handler_errors == 0
        assert await helper.committed(source, group) in (None, 0)

        async def handle(rec: Received) -> list[OutRecord]:
            seen.append("second")
            return []

        second = ConsumerRuntime(memory_settings, name="second", group_id=group,
                                 topics=(source,), handler=handle, max_records=1)  # fmt: skip
        await asyncio.wait_for(second.run(), WAIT_S)
        assert seen == ["first", "second"]
        assert await helper.committed(source, group) == 1
    finally:
        await helper.close()
