"""The in-memory broker's state: topics of partition logs, consumer groups, and who to wake.

One :class:`MemoryBroker` per ``memory://<name>`` in the process (:func:`broker_named`). Its
clients (``clients.py``, ``consumer.py``) call it synchronously under one lock,
so clients running in other threads' event loops (``run_coroutine``) see one consistent log.
A change (a record appended, a group rebalanced) wakes every waiting client through its own
loop (``call_soon_threadsafe``).
"""

from __future__ import annotations

import asyncio
import threading
import time
from collections.abc import Iterable
from dataclasses import dataclass, field

from aiokafka import ConsumerRecord, TopicPartition
from aiokafka.errors import OffsetOutOfRangeError, UnknownTopicOrPartitionError

from sparktrainer.bus.memory.group import MemoryGroup
from sparktrainer.bus.memory_url import SCHEME

# Like tansu (checked by tests/contract): a record keeps its producer's timestamp (CreateTime),
# the time of the send unless the producer names one.
CREATE_TIME = 0


@dataclass
class _Log:
    """One partition: its records in offset order, from its log start offset on."""

    records: list[ConsumerRecord[bytes, bytes]] = field(default_factory=list)
    start: int = 0  # the offset of records[0]; moved on by delete_records

    @property
    def end(self) -> int:
        return self.start + len(self.records)


class MemoryBroker:
    """Topics, partition logs and consumer groups of one in-memory broker."""

    def __init__(self, name: str, default_partitions: int = 3) -> None:
        self.name = name
        self.default_partitions = default_partitions  # of a topic created by producing to it
        self.lock = threading.RLock()
        self._topics: dict[str, list[_Log]] = {}
        self._groups: dict[str, MemoryGroup] = {}
        self._waiters: set[tuple[asyncio.AbstractEventLoop, asyncio.Event]] = set()

    def __repr__(self) -> str:
        with self.lock:
            sizes = {t: [p.end for p in logs] for t, logs in self._topics.items()}
        return f"MemoryBroker({self.name!r}, records per partition: {sizes})"

    # -- topics ------------------------------------------------------------------------------

    def create_topic(self, topic: str, partitions: int) -> bool:
        """Create a topic with this many partitions; False when it exists (nothing changes)."""
        with self.lock:
            if topic in self._topics:
                return False
            self._topics[topic] = [_Log() for _ in range(partitions)]
            for group in self._groups.values():
                group.topic_created(topic)
        self.notify()
        return True

    def topics(self) -> set[str]:
        """The names of every topic."""
        with self.lock:
            return set(self._topics)

    def partitions(self, topic: str) -> set[int] | None:
        """The partition numbers of a topic, None when it does not exist."""
        with self.lock:
            logs = self._topics.get(topic)
            return set(range(len(logs))) if logs is not None else None

    def partitions_or_create(self, topic: str) -> set[int]:
        """A topic's partitions; producing to a missing topic creates it, as tansu does."""
        self.create_topic(topic, self.default_partitions)
        return self.partitions(topic) or set()

    def _log(self, tp: TopicPartition) -> _Log:
        logs = self._topics.get(tp.topic)
        if logs is None or not 0 <= tp.partition < len(logs):
            raise UnknownTopicOrPartitionError(f"{tp.topic}/{tp.partition} does not exist")
        return logs[tp.partition]

    # -- the log -------------------------------------------------------------------------------

    def append(
        self,
        tp: TopicPartition,
        key: bytes | None,
        value: bytes | None,
        headers: Iterable[tuple[str, bytes]],
        timestamp_ms: int | None = None,
    ) -> ConsumerRecord[bytes, bytes]:
        """Append one record: it gets the next offset, and the time now unless one is given."""
        with self.lock:
            log = self._log(tp)
            record: ConsumerRecord[bytes, bytes] = ConsumerRecord(
                topic=tp.topic,
                partition=tp.partition,
                offset=log.end,
                timestamp=time.time_ns() // 1_000_000 if timestamp_ms is None else timestamp_ms,
                timestamp_type=CREATE_TIME,
                key=key,
                value=value,
                checksum=None,
                serialized_key_size=len(key) if key is not None else -1,
                serialized_value_size=len(value) if value is not None else -1,
                headers=tuple(headers),
            )
            log.records.append(record)
        self.notify()
        return record

    def read(
        self, tp: TopicPartition, offset: int, count: int
    ) -> list[ConsumerRecord[bytes, bytes]]:
        """Up to ``count`` records from ``offset`` on (none below the log start)."""
        with self.lock:
            log = self._log(tp)
            at = max(offset, log.start) - log.start
            return log.records[at : at + count]

    def start(self, tp: TopicPartition) -> int:
        """The partition's log start offset: the first offset it still holds."""
        with self.lock:
            return self._log(tp).start

    def delete_records(self, tp: TopicPartition, before: int) -> int:
        """Kafka's DeleteRecords: drop the records below ``before``; the new log start."""
        with self.lock:
            log = self._log(tp)
            if not log.start <= before <= log.end:
                raise OffsetOutOfRangeError(f"{tp}: {before} not in [{log.start}, {log.end}]")
            del log.records[: before - log.start]
            log.start = before
            return before

    def end(self, tp: TopicPartition) -> int:
        """The offset the next record appended to the partition gets."""
        with self.lock:
            return self._log(tp).end

    def offset_at(self, tp: TopicPartition, ms: int) -> ConsumerRecord[bytes, bytes] | None:
        """The first record stamped at or after ``ms``, None when there is none."""
        with self.lock:
            return next((r for r in self._log(tp).records if r.timestamp >= ms), None)

    # -- groups and waking -----------------------------------------------------------------------

    def group(self, group_id: str) -> MemoryGroup:
        """The consumer group of this id (created empty on first use)."""
        with self.lock:
            if group_id not in self._groups:
                self._groups[group_id] = MemoryGroup(
                    group_id, self.lock, self.notify, self.partitions
                )
            return self._groups[group_id]

    def notify(self) -> None:
        """Wake every client waiting for a change."""
        with self.lock:
            waiters = list(self._waiters)
        for loop, event in waiters:
            if not loop.is_closed():
                loop.call_soon_threadsafe(event.set)

    async def wait_change(self, timeout_s: float) -> None:
        """Return at the next change, or after ``timeout_s``.

        Not ``asyncio.wait_for``: on Python 3.11 it can swallow a cancellation that comes as
        the event is set (frequent here), and a cancelled reader would then poll forever.
        """
        if timeout_s <= 0:
            return
        loop = asyncio.get_running_loop()
        waiter = (loop, asyncio.Event())
        with self.lock:
            self._waiters.add(waiter)
        timer = loop.call_later(timeout_s, waiter[1].set)
        try:
            await waiter[1].wait()
        finally:
            timer.cancel()
            with self.lock:
                self._waiters.discard(waiter)


_BROKERS: dict[str, MemoryBroker] = {}
_BROKERS_LOCK = threading.Lock()


def broker_named(bootstrap_servers: str, default_partitions: int = 3) -> MemoryBroker:
    """The process's broker for ``memory://<name>`` (created on first use)."""
    name = bootstrap_servers.removeprefix(SCHEME)
    with _BROKERS_LOCK:
        if name not in _BROKERS:
            _BROKERS[name] = MemoryBroker(name, default_partitions)
        return _BROKERS[name]


def forget_broker(bootstrap_servers: str) -> None:
    """Drop the process's broker of this name (a test's own, at its end): its log is freed."""
    with _BROKERS_LOCK:
        _BROKERS.pop(bootstrap_servers.removeprefix(SCHEME), None)
