"""Partition offset bookkeeping of a group consumer: what is in flight, done and committable.

Modelled on aiokafka's ``consumer/subscription_state.py``: the state lives in a small class
of its own, so the rules are tested without a broker or a runtime. Two state machines:

A partition::

    untracked --first fetched record--> tracked (base = that offset) --forget()--> untracked

``base`` is the next offset to commit from: every offset below it is committed (or was before
this member got the partition). A partition given back by a rebalance starts untracked again,
so its base comes from the first record refetched from the group's committed offset.

A record offset of a tracked partition::

    fetched --accept()--> waiting --start()--> in flight --finish()--> done
            --committable()--> committed

A waiting record (accepted, not started) is not tracked: if its partition is revoked, the
caller drops it and the broker hands it out again. ``accept`` refuses an offset below the base,
in flight or done (a refetch after a rebalance gave the partition back); ``committable``
moves each base over the contiguous done prefix and reports the new bases, so a commit is
never ahead of the work (``offset + 1`` of the last contiguous done record).
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass, field

from aiokafka import TopicPartition


@dataclass
class _Partition:
    base: int  # next offset to commit from
    in_flight: set[int] = field(default_factory=set)
    done: set[int] = field(default_factory=set)


class PartitionOffsets:
    """Per-partition offsets of records in flight and done; the commit offsets they allow."""

    def __init__(self) -> None:
        self._parts: dict[TopicPartition, _Partition] = {}

    def __contains__(self, tp: object) -> bool:
        return tp in self._parts

    def __repr__(self) -> str:
        parts = {
            f"{tp.topic}/{tp.partition}": (p.base, len(p.in_flight), len(p.done))
            for tp, p in self._parts.items()
        }
        return f"PartitionOffsets(base, in flight, done: {parts})"

    def tracked(self) -> set[TopicPartition]:
        """The partitions with state."""
        return set(self._parts)

    def base(self, tp: TopicPartition) -> int | None:
        """The next offset to commit from, None while the partition is untracked."""
        part = self._parts.get(tp)
        return part.base if part else None

    def accept(self, tp: TopicPartition, offset: int) -> bool:
        """A fetched record: False when it was seen already (below the base, in flight, done)."""
        part = self._parts.setdefault(tp, _Partition(base=offset))
        return not (offset < part.base or offset in part.in_flight or offset in part.done)

    def start(self, tp: TopicPartition, offset: int) -> bool:
        """Waiting -> in flight; False when the partition was forgotten meanwhile (revoked)."""
        part = self._parts.get(tp)
        if part is None:
            return False
        part.in_flight.add(offset)
        return True

    def give_back(self, tp: TopicPartition, offset: int) -> None:
        """In flight -> waiting again (a record given back to start later; never committed)."""
        part = self._parts.get(tp)
        if part is not None:
            part.in_flight.discard(offset)

    def finish(self, tp: TopicPartition, offset: int) -> None:
        """In flight -> done; nothing when the partition or the offset was forgotten."""
        part = self._parts.get(tp)
        if part is not None and offset in part.in_flight:
            part.in_flight.discard(offset)
            part.done.add(offset)

    def committable(self) -> dict[TopicPartition, int]:
        """Move each base over its contiguous done prefix; the partitions whose base moved."""
        moved = {}
        for tp, part in self._parts.items():
            start = part.base
            while part.base in part.done:
                part.done.discard(part.base)
                part.base += 1
            if part.base != start:
                moved[tp] = part.base
        return moved

    def forget(self, tps: Iterable[TopicPartition]) -> None:
        """Drop the state of these partitions (revoked, or moved to another member)."""
        for tp in tps:
            self._parts.pop(tp, None)
