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


async def test_a_requeued_record_waits_again_behind_a_better_one_and_then_commits(
    memory_settings: Settings, unique: Callable[[str], str]
) -> None:
    """Priority preemption's hand-back: the record is not committed, the runtime goes on, and
    the given-back record heads its partition again, before the one that came meanwhile."""
    from sparktrainer.errors import Requeued
    from sparktrainer.scheduling.picker import PriorityWaiting

    helper = KafkaHelper(memory_settings, unique)
    try:
        source, group = await helper.create_topic(), unique("group")
        await helper.produce(source, "low", key="k")
        seen: list[str] = []
        arrived = asyncio.Event()

        async def handle(rec: Received) -> list[OutRecord]:
            seen.append(rec.value.decode())
            if seen == ["low"]:
                await helper.produce(source, "next", key="k")
                await arrived.wait()  # fetched and waiting behind the running one
                raise Requeued("gave way")
            return []

        runtime = ConsumerRuntime(memory_settings, name="requeue", group_id=group,
                                  topics=(source,), handler=handle, max_records=2,
                                  waiting=PriorityWaiting(0.0, settle_s=0))  # fmt: skip
        task = asyncio.create_task(runtime.run())
        for _ in range(300):  # bounded: the record arrives within a few polls
            if len(runtime.waiting):
                break
            await asyncio.sleep(0.01)
        arrived.set()
        stats = await asyncio.wait_for(task, WAIT_S)
        assert seen == ["low", "low", "next"]  # the given-back one heads its partition again
        assert stats.records_done == 2 and await helper.committed(source, group) == 2
    finally:
        await helper.close()
