"""The batch runtime (bus/batches.py) on the in-memory broker: a backlog is answered in
batches, every record once, and committed past its end; a batch whose handler fails goes
record by record (retries, then the failure hook), so a poison record is still answered and
the others keep their own answers."""

from __future__ import annotations

import asyncio
from collections.abc import Callable

import pytest

from sparktrainer.bus.batches import BatchRuntime
from sparktrainer.contracts.envelope import OutRecord
from sparktrainer.contracts.records import Received
from sparktrainer.settings import Settings
from tests.conftest import KafkaHelper

pytestmark = pytest.mark.memory
WAIT_S = 30.0
RECORDS = 40


def echo(out: str, rec: Received) -> list[OutRecord]:
    return [OutRecord(topic=out, key=rec.key or b"", value=rec.value or b"", headers=[])]


async def test_a_backlog_is_answered_in_batches_once_each_and_committed(
    memory_settings: Settings, unique: Callable[[str], str]
) -> None:
    helper = KafkaHelper(memory_settings, unique)
    try:
        source, out, group = await helper.create_topic(), await helper.create_topic(), unique("g")
        for i in range(RECORDS):
            await helper.produce(source, f"r{i}", key=f"k{i}")
        sizes: list[int] = []

        async def one(rec: Received) -> list[OutRecord]:
            raise AssertionError("a batch that succeeds never goes record by record")

        async def many(recs: list[Received]) -> list[list[OutRecord]]:
            sizes.append(len(recs))
            return [echo(out, r) for r in recs]

        runtime = BatchRuntime(memory_settings, name="batches", group_id=group, topics=(source,),
                               handler=one, batch_handler=many, batch_max_records=8,
                               concurrency=16, max_records=RECORDS)  # fmt: skip
        stats = await asyncio.wait_for(runtime.run(), WAIT_S)
        assert sum(sizes) == RECORDS and max(sizes) <= 8 and len(sizes) < RECORDS
        assert stats.records_done == stats.records_out == RECORDS and runtime.batches == len(sizes)
        answers = await helper.consume(out, RECORDS, timeout_s=WAIT_S)
        assert sorted(r.value for r in answers) == sorted(f"r{i}".encode() for i in range(RECORDS))
        assert await helper.committed(source, group) == RECORDS
    finally:
        await helper.close()


async def test_a_failed_batch_is_answered_record_by_record(
    memory_settings: Settings, unique: Callable[[str], str]
) -> None:
    helper = KafkaHelper(memory_settings, unique)
    try:
        source, out, group = await helper.create_topic(), await helper.create_topic(), unique("g")
        for value in ("good-1", "poison", "good-2"):
            await helper.produce(source, value)
        tried: list[bytes] = []

        async def one(rec: Received) -> list[OutRecord]:
            tried.append(rec.value or b"")
            if rec.value == b"poison":
                raise ValueError("cannot read it")
            return echo(out, rec)

        async def many(recs: list[Received]) -> list[list[OutRecord]]:
            return [await one(r) for r in recs]  # the poison record fails the whole batch

        async def failed(rec: Received, error: BaseException) -> list[OutRecord]:
            return [OutRecord(topic=out, key=b"", value=b"failed:" + (rec.value or b""),
                              headers=[])]  # fmt: skip

        runtime = BatchRuntime(memory_settings, name="fallback", group_id=group,
                               topics=(source,), handler=one, batch_handler=many,
                               on_failure=failed, handler_attempts=2, max_records=3)  # fmt: skip
        stats = await asyncio.wait_for(runtime.run(), WAIT_S)
        answers = sorted(r.value for r in await helper.consume(out, 3, timeout_s=WAIT_S))
        assert answers == [b"failed:poison", b"good-1", b"good-2"]
        assert stats.records_done == 3 and stats.handler_errors == 2  # the poison's two tries
        assert tried.count(b"poison") == 3  # once in the batch, then twice on its own
        assert await helper.committed(source, group) == 3
    finally:
        await helper.close()
