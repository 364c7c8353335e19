"""One contract, two brokers: each case runs on the in-memory broker and on the real one.

What the bus code relies on (``bus/runtime.py``, ``bus/reader.py``, the producers): ordering
and offsets per partition, murmur2 key routing, headers, producer timestamps, log ends and
high watermarks, group commits, pause/resume, seeks, rebalances as members join and leave,
and the runtime's commit only after its outputs are acknowledged. A case that fails on one
broker only is a difference to fix in ``sparktrainer/bus/memory`` (or to document in
docs/ARCHITECTURE.md, "In-memory broker").
"""

from __future__ import annotations

import asyncio
import inspect
import time
from collections.abc import AsyncIterator, Awaitable, Callable

import pytest
from aiokafka import ConsumerRebalanceListener, TopicPartition
from aiokafka.coordinator.assignors.sticky.sticky_assignor import StickyPartitionAssignor

from sparktrainer.bus.kafka import make_admin, make_consumer
from sparktrainer.bus.reader import LogReader, partition_for_key
from sparktrainer.bus.runtime import ConsumerRuntime
from sparktrainer.contracts.envelope import OutRecord
from sparktrainer.contracts.records import Received
from sparktrainer.settings import Settings
from tests.conftest import KafkaHelper

WAIT_S = 30.0  # the bound of every wait for the broker; a healthy run takes milliseconds to ~2 s


@pytest.fixture(
    params=[
        pytest.param("memory", marks=pytest.mark.memory),
        pytest.param("real", marks=pytest.mark.integration),
    ]
)
def bus(request: pytest.FixtureRequest) -> Settings:
    """The settings of one broker: the in-memory one, or the session's real stack."""
    return request.getfixturevalue("memory_settings" if request.param == "memory" else "stack")


@pytest.fixture
async def helper(bus: Settings, unique: Callable[[str], str]) -> AsyncIterator[KafkaHelper]:
    """A KafkaHelper on that broker."""
    kafka = KafkaHelper(bus, unique)
    try:
        yield kafka
    finally:
        await kafka.close()


async def until(check: Callable[[], bool | Awaitable[bool]], what: str) -> None:
    """Poll ``check`` (plain or async) until it holds; fail naming ``what`` after WAIT_S."""
    deadline = time.monotonic() + WAIT_S
    while not await holds(check()):
        assert time.monotonic() < deadline, f"not within {WAIT_S}s: {what}"
        await asyncio.sleep(0.02)


async def holds(answer: bool | Awaitable[bool]) -> bool:
    return await answer if inspect.isawaitable(answer) else bool(answer)


async def test_order_offsets_keys_headers_timestamps(helper: KafkaHelper) -> None:
    topic = await helper.create_topic(partitions=3)
    before_ms = time.time_ns() // 1_000_000
    sent = [
        await helper.produce(topic, f"v{i}", key=f"k{i % 7}", headers=[("n", str(i).encode())])
        for i in range(21)
    ]
    after_ms = time.time_ns() // 1_000_000
    stamped = await helper.produce(topic, "old", key="k0", headers=[])
    got = await helper.consume(topic, 22)
    for part in range(3):
        mine = [r for r in got if r.partition == part]
        assert [r.offset for r in mine] == list(range(len(mine)))  # contiguous from 0
        values = [int(r.value[1:]) for r in mine if r.value != b"old"]
        assert values == sorted(values)  # produce order kept within a partition
    for r in got:
        assert r.partition == partition_for_key(r.key, range(3))  # murmur2, as reader.py routes
    by_value = {r.value: r for r in got}
    for i, meta in enumerate(sent):
        rec = by_value[f"v{i}".encode()]
        assert (meta.partition, meta.offset) == (rec.partition, rec.offset)
        assert list(rec.headers) == [("n", str(i).encode())]
        assert before_ms - 1000 <= rec.timestamp <= after_ms + 1000  # the producer's clock
    assert by_value[b"old"].offset == stamped.offset


async def test_producer_timestamp_is_kept(helper: KafkaHelper) -> None:
    """Both brokers keep a timestamp the producer names (CreateTime): it is a claim."""
    topic = await helper.create_topic()
    producer = await helper._started_producer()
    meta = await producer.send_and_wait(topic, b"x", timestamp_ms=1_000)
    (rec,) = await helper.consume(topic)
    assert rec.timestamp == 1_000 and rec.timestamp_type == 0 and meta.offset == 0


async def test_create_existing_topic_keeps_it(helper: KafkaHelper, bus: Settings) -> None:
    topic = await helper.create_topic(partitions=2)
    admin = make_admin(bus)
    await admin.start()
    try:
        from aiokafka.admin import NewTopic

        answer = await admin.create_topics([NewTopic(topic, 5, 1)])
        assert topic in await admin.list_topics()
    finally:
        await admin.close()
    assert [(t, code) for t, code, *_ in answer.topic_errors] == [(topic, 36)]
    assert await (await helper._started_producer()).partitions_for(topic) == {0, 1}


async def test_log_reader_ends_highwater_ranges_and_keys(
    helper: KafkaHelper, bus: Settings
) -> None:
    topic = await helper.create_topic(partitions=2)
    metas = [await helper.produce(topic, f"r{i}", key=f"key-{i}") for i in range(8)]
    async with LogReader(bus) as reader:
        tps = await reader.partitions([topic, "no.such.topic"])
        assert tps == [TopicPartition(topic, 0), TopicPartition(topic, 1)]
        ends = await reader.ends(tps)
        counts = {tp: sum(1 for m in metas if m.partition == tp.partition) for tp in tps}
        assert ends == counts
        assert await reader.beginnings(tps) == {tp: 0 for tp in tps}
        (routed,) = await reader.key_partitions([topic], b"key-3")
        assert routed.partition == metas[3].partition
        await reader.assign_at_beginning(tps)
        assert all(reader.highwater(tp) is None for tp in tps)  # no fetch yet
        seen = [r async for batch in reader.read_range(ends) for r in batch]
        assert sorted((r.partition, r.offset) for r in seen) == sorted(
            (m.partition, m.offset) for m in metas
        )
        assert {tp: reader.highwater(tp) for tp in tps} == ends
        await helper.produce(topic, "later", key="key-3")
        assert await reader.ends(tps) != ends  # a fixed range: read_range stopped at the old ends


async def test_seek_and_pause_resume(helper: KafkaHelper, bus: Settings) -> None:
    topic = await helper.create_topic(partitions=2)
    for i in range(4):
        await (await helper._started_producer()).send_and_wait(topic, b"%d" % i, partition=i % 2)
    p0, p1 = TopicPartition(topic, 0), TopicPartition(topic, 1)
    consumer = make_consumer(bus, group_id=None)
    await consumer.start()
    try:
        consumer.assign([p0, p1])
        consumer.seek(p0, 1)
        consumer.seek(p1, 0)
        consumer.pause(p1)
        got = await fetch(consumer, 1)
        assert [(r.partition, r.offset) for r in got] == [(0, 1)]  # p1 paused, p0 from offset 1
        consumer.resume(p1)
        assert sorted((r.partition, r.offset) for r in await fetch(consumer, 2)) == [(1, 0), (1, 1)]
        await consumer.seek_to_beginning(p0)
        assert [(r.partition, r.offset) for r in await fetch(consumer, 2)] == [(0, 0), (0, 1)]
    finally:
        await consumer.stop()


async def fetch(consumer: object, count: int) -> list[Received]:
    """Exactly ``count`` records from the consumer's fetchable partitions (fails on more)."""
    got: list = []
    deadline = time.monotonic() + WAIT_S
    while len(got) < count and time.monotonic() < deadline:
        batch = await consumer.getmany(timeout_ms=200)  # type: ignore[attr-defined]
        got += [r for records in batch.values() for r in records]
    extra = await consumer.getmany(timeout_ms=100)  # type: ignore[attr-defined]
    assert len(got) == count and not extra, (got, extra)
    return got


async def test_commit_committed_and_resume_from_it(
    helper: KafkaHelper, unique: Callable[[str], str]
) -> None:
    topic = await helper.create_topic()
    for i in range(5):
        await helper.produce(topic, f"c{i}")
    group = unique("group")
    first = await helper.consume(topic, 3, group_id=group, commit=True)
    assert [r.offset for r in first] == [0, 1, 2]
    assert await helper.committed(topic, group) == 3
    rest = await helper.consume(topic, 2, group_id=group)
    assert [r.offset for r in rest] == [3, 4]  # a new member starts at the committed offset
    assert await helper.committed(topic, unique("other")) is None


class Recorder(ConsumerRebalanceListener):  # type: ignore[misc]
    """Every assignment a member was given, in order."""

    def __init__(self) -> None:
        self.assigned: list[set[TopicPartition]] = []
        self.revoked: list[set[TopicPartition]] = []

    async def on_partitions_revoked(self, revoked: set[TopicPartition]) -> None:
        self.revoked.append(set(revoked))

    async def on_partitions_assigned(self, assigned: set[TopicPartition]) -> None:
        self.assigned.append(set(assigned))


async def test_members_join_and_leave_rebalance(
    helper: KafkaHelper, bus: Settings, unique: Callable[[str], str]
) -> None:
    topic = await helper.create_topic(partitions=4)
    everything = {TopicPartition(topic, p) for p in range(4)}
    group = unique("group")
    members = [member(bus, topic, group) for _ in range(2)]
    (a, a_seen), (b, b_seen) = members
    polls = [asyncio.create_task(poll_forever(c)) for c, _ in members]
    try:
        await a.start()
        await until(lambda: settled(a_seen, everything), "the first member holds every partition")
        await b.start()
        await until(
            lambda: settled(b_seen) and settled(a_seen) and len(a.assignment()) == 2,
            "the second member's join splits the partitions",
        )
        assert a.assignment() | b.assignment() == everything
        assert not a.assignment() & b.assignment()
        assert a_seen.assigned[-1] <= a_seen.assigned[0]  # sticky: a kept what it could
        assert a_seen.revoked[0] == set() and everything in a_seen.revoked  # eager revoke
        kept = b.assignment()
        await a.stop()
        await until(lambda: settled(b_seen, everything), "a member leaving gives the rest all")
        assert kept <= b.assignment()
    finally:
        for task in polls:
            task.cancel()
        await asyncio.gather(*polls, return_exceptions=True)
        await asyncio.gather(*(c.stop() for c, _ in members))


def member(bus: Settings, topic: str, group: str) -> tuple[object, Recorder]:
    seen = Recorder()
    consumer = make_consumer(
        bus, group_id=group, partition_assignment_strategy=(StickyPartitionAssignor,)
    )
    consumer.subscribe([topic], listener=seen)
    return consumer, seen


def settled(seen: Recorder, expected: set[TopicPartition] | None = None) -> bool:
    """The member's last rebalance step was an assignment (of ``expected``, when given)."""
    if not seen.assigned or len(seen.revoked) > len(seen.assigned):
        return False
    return expected is None or seen.assigned[-1] == expected


async def poll_forever(consumer: object) -> None:
    while True:  # cancelled by the test; a member must poll to stay in its group
        await consumer.getmany(timeout_ms=50)  # type: ignore[attr-defined]
        await asyncio.sleep(0)


async def test_runtime_commits_only_after_outputs_are_acknowledged(
    helper: KafkaHelper, bus: Settings, unique: Callable[[str], str]
) -> None:
    source, sink = await helper.create_topic(), await helper.create_topic()
    release = asyncio.Event()

    async def handle(rec: Received) -> list[OutRecord]:
        if rec.offset == 1:
            await release.wait()
        return [OutRecord(sink, rec.key or b"", b"out-" + (rec.value or b""), ())]

    group = unique("group")
    runtime = ConsumerRuntime(
        bus, name="contract", group_id=group, topics=(source,), handler=handle, concurrency=2
    )
    task = asyncio.create_task(runtime.run())
    try:
        await runtime.wait_positioned()
        for i in range(3):
            await helper.produce(source, f"in{i}", key="same")
        # Record 2 is done, but record 1 is not: the commit stops below it.
        await until(lambda: runtime.stats.records_done >= 2, "records 0 and 2 done")
        await until(
            lambda: committed_is(helper, source, group, 1), "offset 1 committed after record 0"
        )
        assert await helper.committed(source, group) == 1
        assert len(await helper.consume(sink, 2)) == 2  # both done records' outputs are on the log
        release.set()
        await until(lambda: committed_is(helper, source, group, 3), "every record committed")
        outs = await helper.consume(sink, 3)
        assert sorted(r.value for r in outs) == [b"out-in0", b"out-in1", b"out-in2"]
    finally:
        release.set()
        runtime.stop()
        await asyncio.wait_for(task, WAIT_S)


async def committed_is(helper: KafkaHelper, topic: str, group: str, offset: int) -> bool:
    return await helper.committed(topic, group) == offset


async def test_offsets_at_a_time_start_at_or_before_the_first_record_then(
    helper: KafkaHelper, bus: Settings
) -> None:
    """Replay's time window: the answer may be early (tansu: batch-coarse), never late."""
    topic = await helper.create_topic()
    producer = await helper._started_producer()
    for i, ms in enumerate((1_000, 2_000, 3_000, 4_000)):
        await producer.send_and_wait(topic, b"t%d" % i, timestamp_ms=ms)
    tp = TopicPartition(topic, 0)
    async with LogReader(bus) as reader:
        found = await reader.offsets_at([tp], 2_500)
        assert found[tp] <= 2  # offset 2 is the first record stamped at or after 2 500
        reader.assign({tp: found[tp]})
        seen = [r async for batch in reader.read_range({tp: 4}) for r in batch]
        assert [r.offset for r in seen if r.timestamp_ms >= 2_500] == [2, 3]
        # Nothing is that late: left out (memory, Kafka), or an early offset (tansu: seen 0).
        late = await reader.offsets_at([tp], 5_000)
        assert late.get(tp, 0) <= 4 and set(late) <= {tp}


async def test_a_new_group_reading_latest_sees_only_what_comes_next(
    helper: KafkaHelper, bus: Settings, unique: Callable[[str], str]
) -> None:
    """The cancel responder and the trainer's control runtime start at the end, not replaying."""
    topic = await helper.create_topic()
    await helper.produce(topic, "before")
    seen: list[Received] = []

    async def handle(rec: Received) -> list[OutRecord]:
        seen.append(rec)
        return []

    runtime = ConsumerRuntime(
        bus,
        name="latest",
        group_id=unique("group"),
        topics=(topic,),
        handler=handle,
        consumer_options={"auto_offset_reset": "latest"},
    )
    task = asyncio.create_task(runtime.run())
    try:
        await runtime.wait_positioned()
        await helper.produce(topic, "after")
        await until(lambda: len(seen) >= 1, "the record produced after positioning")
        assert [r.value for r in seen] == [b"after"]
    finally:
        runtime.stop()
        await asyncio.wait_for(task, WAIT_S)


async def test_producing_to_a_missing_topic_creates_it(
    helper: KafkaHelper, bus: Settings, unique: Callable[[str], str]
) -> None:
    topic = unique("auto-topic")
    meta = await helper.produce(topic, "first", key="k")
    partitions = await (await helper._started_producer()).partitions_for(topic)
    assert meta.offset == 0 and meta.partition in partitions
    (rec,) = await helper.consume(topic)
    assert rec.value == b"first"
