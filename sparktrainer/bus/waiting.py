"""Records a group consumer has fetched and not started yet, and which one starts next.

``ConsumerRuntime`` keeps its waiting records in one of these. The default, :class:`FifoWaiting`,
starts them in fetch order and pauses every partition while ``concurrency`` of them wait (the
validator, the cancel responder). A trainer uses a priority order instead
(``sparktrainer.scheduling.picker``): the rule of which record goes next lives there; the
runtime only asks :meth:`WaitingRecords.take` and pauses what :meth:`WaitingRecords.to_pause`
names.
"""

from __future__ import annotations

from collections import deque
from typing import Protocol

from aiokafka import TopicPartition

from sparktrainer.contracts.records import Received


def tp_of(rec: Received) -> TopicPartition:
    """The aiokafka topic-partition a record came from."""
    return TopicPartition(rec.topic, rec.partition)


class WaitingRecords(Protocol):
    """Fetched records not started yet; which starts next; which partitions to stop fetching."""

    def add(self, rec: Received) -> None:
        """A record the consumer fetched (partition order is fetch order)."""

    def put_back(self, rec: Received) -> None:
        """A record started and given back undone: first of its partition again."""

    def take(self) -> Received | None:
        """The record to start now, removed; None when none should start (yet)."""

    def drop(self, tps: set[TopicPartition]) -> None:
        """Forget the records of these partitions (revoked: their new owner refetches them)."""

    def clear(self) -> None:
        """Forget every record."""

    def assigned(self, tps: set[TopicPartition]) -> None:
        """The partitions the group has just given this member."""

    def to_pause(self, assigned: set[TopicPartition], concurrency: int) -> set[TopicPartition]:
        """The partitions not to fetch from now (the others are fetched)."""

    def __len__(self) -> int:
        """How many records wait."""


class FifoWaiting:
    """Fetch order; every partition paused while ``concurrency`` records wait for a slot."""

    def __init__(self) -> None:
        self._records: deque[Received] = deque()

    def __repr__(self) -> str:
        return f"FifoWaiting({len(self._records)} waiting)"

    def add(self, rec: Received) -> None:
        self._records.append(rec)

    def put_back(self, rec: Received) -> None:
        self._records.appendleft(rec)

    def take(self) -> Received | None:
        return self._records.popleft() if self._records else None

    def drop(self, tps: set[TopicPartition]) -> None:
        self._records = deque(r for r in self._records if tp_of(r) not in tps)

    def clear(self) -> None:
        self._records.clear()

    def assigned(self, tps: set[TopicPartition]) -> None:
        """Nothing to do: fetch order needs no settling."""

    def to_pause(self, assigned: set[TopicPartition], concurrency: int) -> set[TopicPartition]:
        # Up to ``concurrency`` records wait behind the busy slots, so a slot that frees up is
        # refilled at once instead of after a fetch round trip.
        return set(assigned) if len(self._records) >= concurrency else set()

    def __len__(self) -> int:
        return len(self._records)
