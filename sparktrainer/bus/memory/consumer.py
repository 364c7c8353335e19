"""The in-memory broker's consumer: the part of ``AIOKafkaConsumer``'s API we use.

Group-less (``assign``, ``seek``) or a group member (``subscribe`` with a rebalance listener).
A member runs a coordination task beside the caller's polls, as aiokafka does: it joins,
revokes and takes assignments (``group.py``), calling the listener there, so a listener that
waits for work to finish holds up the rebalance, not the caller's loop. Positions of newly
assigned partitions come from the group's committed offsets, else ``auto_offset_reset``.
"""

from __future__ import annotations

import asyncio
import itertools
import time
from collections.abc import Iterable, Mapping
from typing import Any

from aiokafka import ConsumerRebalanceListener, ConsumerRecord, TopicPartition
from aiokafka.errors import IllegalOperation, IllegalStateError
from aiokafka.structs import OffsetAndMetadata, OffsetAndTimestamp

from sparktrainer.bus.memory.broker import MemoryBroker, broker_named
from sparktrainer.bus.memory.group import GroupMember, MemoryGroup

_MEMBER_IDS = itertools.count(1)
Records = dict[TopicPartition, list[ConsumerRecord[bytes, bytes]]]


class _Metadata:
    """What ``consumer._client.fetch_all_metadata()`` answers (the reader asks it)."""

    def __init__(self, broker: MemoryBroker) -> None:
        self._broker = broker

    async def fetch_all_metadata(self) -> _Metadata:
        return self

    def topics(self) -> set[str]:
        return self._broker.topics()

    def partitions_for_topic(self, topic: str) -> set[int] | None:
        return self._broker.partitions(topic)


class MemoryConsumer:
    """``AIOKafkaConsumer`` on an in-memory broker (manual commits; auto-commit is not offered).

    :param topics: topics to subscribe to at once (as aiokafka's positional arguments).
    :param bootstrap_servers: ``memory://<name>``.
    :param group_id: the consumer group, None for a group-less consumer.
    :param auto_offset_reset: ``earliest`` or ``latest``: where a partition without a committed
        offset (or a position past its end) starts.
    :param max_poll_records: the most records one ``getmany`` returns.
    :param max_poll_interval_ms: a member that does not poll for this long leaves its group.
    :param heartbeat_interval_ms: how often the coordination task looks at the group unwoken.
    :param partition_assignment_strategy: aiokafka assignor classes; the first one's ``name``
        (``roundrobin``, ``range``, ``sticky``) picks the assignor.
    """

    def __init__(
        self,
        *topics: str,
        bootstrap_servers: str,
        group_id: str | None = None,
        auto_offset_reset: str = "latest",
        max_poll_records: int = 500,
        max_poll_interval_ms: int = 300_000,
        heartbeat_interval_ms: int = 3_000,
        partition_assignment_strategy: tuple[Any, ...] = (),
        enable_auto_commit: bool = False,
        **_ignored: Any,  # fetch sizes, timeouts, security: nothing to tune in memory
    ) -> None:
        if enable_auto_commit:
            raise ValueError("the in-memory broker offers manual commits only (as we use them)")
        self._broker = broker_named(bootstrap_servers)
        self._client = _Metadata(self._broker)
        self._group_id = group_id
        self._reset = auto_offset_reset
        self._max_poll_records = max_poll_records
        self._max_poll_interval_s = max_poll_interval_ms / 1000
        self._heartbeat_s = heartbeat_interval_ms / 1000
        strategies = partition_assignment_strategy or ()
        self._strategy = (
            getattr(strategies[0], "name", "roundrobin") if strategies else "roundrobin"
        )
        self._topics: frozenset[str] = frozenset()
        self._listener: ConsumerRebalanceListener | None = None
        self._assignment: set[TopicPartition] = set()
        self._reassigning = False  # a member between revoke and its new assignment fetches nothing
        self._positions: dict[TopicPartition, int] = {}
        self._highwater: dict[TopicPartition, int] = {}
        self._paused: set[TopicPartition] = set()
        self._turn = 0
        self._member: GroupMember | None = None
        self._coordinator: asyncio.Task[None] | None = None
        self._closed = False
        if topics:
            self.subscribe(list(topics))

    def __repr__(self) -> str:
        parts = sorted(f"{tp.topic}/{tp.partition}" for tp in self._assignment)
        return f"MemoryConsumer({self._broker.name!r}, group={self._group_id!r}, assigned={parts})"

    # -- lifecycle -----------------------------------------------------------------------------

    async def start(self) -> None:
        """Join the group when subscribed (the assignment follows in the coordination task)."""
        if self._topics and self._coordinator is None:
            self._start_member()

    async def stop(self) -> None:
        """Leave the group (no revoke callback, as aiokafka's close) and stop fetching."""
        self._closed = True
        if self._coordinator is not None:
            self._coordinator.cancel()
            await asyncio.gather(self._coordinator, return_exceptions=True)
        if self._member is not None:
            self._group().leave(self._member)
        self._assignment = set()

    def subscribe(
        self, topics: list[str], listener: ConsumerRebalanceListener | None = None
    ) -> None:
        """Read these topics as a member of the consumer group."""
        if self._group_id is None:
            raise IllegalOperation("subscribe needs a group_id: use assign() without one")
        self._topics, self._listener = frozenset(topics), listener

    def assign(self, partitions: Iterable[TopicPartition]) -> None:
        """Read exactly these partitions (no group); positions reset when not sought."""
        self._assignment = set(partitions)
        self._positions = {tp: p for tp, p in self._positions.items() if tp in self._assignment}
        self._paused &= self._assignment

    def assignment(self) -> set[TopicPartition]:
        """The partitions being read."""
        return set(self._assignment)

    # -- the group -------------------------------------------------------------------------------

    def _group(self) -> MemoryGroup:
        assert self._group_id is not None
        return self._broker.group(self._group_id)

    def _start_member(self) -> None:
        loop = asyncio.get_running_loop()
        self._member = GroupMember(
            member_id=f"memory-{next(_MEMBER_IDS):06d}",
            topics=self._topics,
            strategy=self._strategy,
            max_poll_interval_s=self._max_poll_interval_s,
            loop=loop,
        )
        self._group().join(self._member)
        self._coordinator = loop.create_task(
            self._coordinate(), name=f"memory-group:{self._group_id}"
        )

    async def _coordinate(self) -> None:
        member = self._member
        assert member is not None
        while not self._closed:
            step = self._group().step(member)
            if step == "join" and self._out_until_polled(member):
                self._reassigning = True  # out of the group: fetch nothing meanwhile
                await self._broker.wait_change(self._heartbeat_s)
            elif step == "join":
                member.last_poll, member.generation = time.monotonic(), -1
                self._group().join(member)
            elif step == "revoke":
                self._reassigning = True
                await self._call_listener("on_partitions_revoked", set(self._assignment))
                self._group().rejoined(member)
            elif step == "assign":
                self._take(self._group().assigned_to(member))
                await self._call_listener("on_partitions_assigned", set(self._assignment))
            else:
                await self._broker.wait_change(self._heartbeat_s)

    @staticmethod
    def _out_until_polled(member: GroupMember) -> bool:
        """Dropped for not polling, and not polled since: it rejoins at its next poll."""
        return member.evicted_at is not None and member.last_poll <= member.evicted_at

    def _take(self, assigned: set[TopicPartition]) -> None:
        """A new generation's partitions, each from the group's committed offset (or reset)."""
        self._assignment, self._reassigning = assigned, False
        self._paused &= assigned
        self._highwater = {}
        committed = {tp: self._group().committed(tp) for tp in assigned}
        self._positions = {tp: at for tp, at in committed.items() if at is not None}

    async def _call_listener(self, name: str, tps: set[TopicPartition]) -> None:
        if self._listener is not None:
            result = getattr(self._listener, name)(tps)
            if asyncio.iscoroutine(result):
                await result

    async def commit(
        self, offsets: Mapping[TopicPartition, int | OffsetAndMetadata] | None = None
    ) -> None:
        """Store offsets for the group (default: the positions of every assigned partition)."""
        if self._group_id is None:
            raise IllegalOperation("Requires group_id")
        if self._member is None:
            raise IllegalStateError("Not subscribed to any topics")
        if offsets is None:
            offsets = {tp: self._position_now(tp) for tp in self._assignment}
        plain = {
            tp: o.offset if isinstance(o, OffsetAndMetadata) else o for tp, o in offsets.items()
        }
        for tp in plain:
            if tp not in self._assignment:
                raise IllegalStateError(f"Partition {tp} is not assigned")
        self._group().commit(self._member, plain)

    async def committed(self, tp: TopicPartition) -> int | None:
        """The group's committed offset of a partition (any member's), None when none."""
        if self._group_id is None:
            raise IllegalOperation("Requires group_id")
        return self._group().committed(tp)

    # -- positions -------------------------------------------------------------------------------

    def _position_now(self, tp: TopicPartition) -> int:
        """The fetch position, reset when there is none or it is off the log (OffsetOutOfRange)."""
        start, end = self._broker.start(tp), self._broker.end(tp)
        position = self._positions.get(tp)
        if position is None or not start <= position <= end:
            position = start if self._reset == "earliest" else end
            self._positions[tp] = position
        return position

    async def position(self, tp: TopicPartition) -> int:
        """The offset of the next record a fetch of the partition returns."""
        if tp not in self._assignment:
            raise IllegalStateError(f"Partition {tp} is not assigned")
        return self._position_now(tp)

    def seek(self, tp: TopicPartition, offset: int) -> None:
        """Fetch the partition from this offset next."""
        if tp not in self._assignment:
            raise IllegalStateError(f"Partition {tp} is not assigned")
        self._positions[tp] = offset

    async def seek_to_beginning(self, *partitions: TopicPartition) -> None:
        """Fetch these (default: every assigned) partitions from their first offset."""
        for tp in partitions or tuple(self._assignment):
            self.seek(tp, self._broker.start(tp))

    async def seek_to_end(self, *partitions: TopicPartition) -> None:
        """Fetch these (default: every assigned) partitions from their end: only what comes next."""
        for tp in partitions or tuple(self._assignment):
            self.seek(tp, self._broker.end(tp))

    def pause(self, *partitions: TopicPartition) -> None:
        """Fetch nothing from these partitions until resumed."""
        self._paused |= set(partitions) & self._assignment

    def resume(self, *partitions: TopicPartition) -> None:
        """Fetch from these partitions again."""
        self._paused -= set(partitions)

    def paused(self) -> set[TopicPartition]:
        """The partitions not fetched now."""
        return set(self._paused)

    def highwater(self, tp: TopicPartition) -> int | None:
        """The partition's log end as of its last fetch (None before one)."""
        return self._highwater.get(tp)

    async def beginning_offsets(self, tps: Iterable[TopicPartition]) -> dict[TopicPartition, int]:
        """The first offset each partition still holds (its log start)."""
        return {tp: self._broker.start(tp) for tp in tps}

    async def end_offsets(self, tps: Iterable[TopicPartition]) -> dict[TopicPartition, int]:
        """The log end of each partition."""
        return {tp: self._broker.end(tp) for tp in tps}

    async def offsets_for_times(
        self, timestamps: Mapping[TopicPartition, int]
    ) -> dict[TopicPartition, OffsetAndTimestamp | None]:
        """Per partition, the first record at or after the time, None when there is none."""
        found = {tp: self._broker.offset_at(tp, ms) for tp, ms in timestamps.items()}
        return {
            tp: OffsetAndTimestamp(r.offset, r.timestamp) if r else None for tp, r in found.items()
        }

    def partitions_for_topic(self, topic: str) -> set[int] | None:
        """The topic's partition numbers, None when it does not exist."""
        return self._broker.partitions(topic)

    async def topics(self) -> set[str]:
        """Every topic's name."""
        return self._broker.topics()

    # -- fetching --------------------------------------------------------------------------------

    async def getmany(
        self, *partitions: TopicPartition, timeout_ms: int = 0, max_records: int | None = None
    ) -> Records:
        """Records of the fetchable partitions (of ``partitions``, or all); waits for some up
        to ``timeout_ms``."""
        loop = asyncio.get_running_loop()
        deadline = loop.time() + timeout_ms / 1000
        while True:
            if self._member is not None:
                self._member.last_poll = time.monotonic()
            batch = self._fetch(set(partitions), max_records or self._max_poll_records)
            left = deadline - loop.time()
            if batch or left <= 0 or self._closed:
                return batch
            await self._broker.wait_change(left)

    async def getone(self, *partitions: TopicPartition) -> ConsumerRecord[bytes, bytes]:
        """The next record of the fetchable partitions, waiting as long as it takes."""
        while True:
            batch = await self.getmany(*partitions, timeout_ms=1000, max_records=1)
            for records in batch.values():
                return records[0]

    def _fetch(self, only: set[TopicPartition], limit: int) -> Records:
        if self._reassigning:
            return {}
        fetchable = sorted(tp for tp in self._assignment - self._paused if not only or tp in only)
        # Start each fetch one partition further on, so a full one does not starve the others.
        self._turn += 1
        if fetchable:
            turn = self._turn % len(fetchable)
            fetchable = fetchable[turn:] + fetchable[:turn]
        out: Records = {}
        for tp in fetchable:
            position = self._position_now(tp)
            self._highwater[tp] = self._broker.end(tp)
            records = self._broker.read(tp, position, limit) if limit > 0 else []
            if records:
                out[tp] = records
                limit -= len(records)
                self._positions[tp] = records[-1].offset + 1
        return out
