"""Consumer groups of the in-memory broker: membership, eager rebalances, assignors, commits.

A group is Kafka's eager protocol seen from outside::

    stable (generation g) --a member joins, leaves or dies--> rebalancing
    rebalancing --every live member has revoked and rejoined--> stable (generation g + 1)

While rebalancing, members keep their old assignment (and may commit with generation ``g``, as
Kafka accepts from the revoke callback) but fetch nothing; once stable, each takes its new
assignment and runs its ``on_partitions_assigned``. A member is alive while it is started, its
event loop is open and it polled within its ``max_poll_interval_ms``; a dead one is removed at
the next step of any member, which rebalances the rest (Kafka's session timeout, seen from the
group). One dropped for not polling rejoins at its next poll, as aiokafka's does. The assignors
are aiokafka's three, by name: ``roundrobin`` (aiokafka's default), ``range`` and ``sticky``
(balanced, keeping each member's partitions where it can).
"""

from __future__ import annotations

import asyncio
import threading
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field

from aiokafka import TopicPartition
from aiokafka.errors import CommitFailedError


@dataclass(eq=False)
class GroupMember:
    """One consumer's membership: what it reads, how it assigns, whether it still polls."""

    member_id: str
    topics: frozenset[str]
    strategy: str
    max_poll_interval_s: float
    loop: asyncio.AbstractEventLoop
    last_poll: float = field(default_factory=time.monotonic)
    closed: bool = False
    generation: int = -1  # the generation of the assignment it holds
    evicted_at: float | None = None  # when the group dropped it for not polling

    def alive(self, now: float) -> bool:
        """Started, its loop open, and polled recently enough."""
        return (
            not self.closed
            and not self.loop.is_closed()
            and now - self.last_poll <= self.max_poll_interval_s
        )


Assignment = dict[str, set[TopicPartition]]


class MemoryGroup:
    """One consumer group: members, the current generation's assignment, committed offsets."""

    def __init__(
        self,
        group_id: str,
        lock: threading.RLock,
        notify: Callable[[], None],
        partitions_of: Callable[[str], set[int] | None],
    ) -> None:
        self.group_id = group_id
        self._lock, self._notify, self._partitions_of = lock, notify, partitions_of
        self.members: dict[str, GroupMember] = {}
        self.generation = 0
        self.rebalancing = False
        self._joined: set[str] = set()
        self.assignment: Assignment = {}
        self._committed: dict[TopicPartition, int] = {}

    def __repr__(self) -> str:
        state = "rebalancing" if self.rebalancing else "stable"
        return f"MemoryGroup({self.group_id!r}, {state}, gen {self.generation}, {self.assignment})"

    # -- membership --------------------------------------------------------------------------

    def join(self, member: GroupMember) -> None:
        """A new member: every member revokes and rejoins."""
        with self._lock:
            self.members[member.member_id] = member
            self._begin_rebalance()

    def leave(self, member: GroupMember) -> None:
        """A member stopped: the others rebalance."""
        with self._lock:
            member.closed = True
            if self.members.pop(member.member_id, None) is not None:
                self._begin_rebalance()

    def topic_created(self, topic: str) -> None:
        """A topic members subscribe to appeared: rebalance so it gets owners."""
        with self._lock:
            if any(topic in m.topics for m in self.members.values()):
                self._begin_rebalance()

    def step(self, member: GroupMember) -> str:
        """What this member does next: "join", "revoke", "assign" or "wait"."""
        with self._lock:
            self._evict_dead()
            if member.member_id not in self.members:
                return "join"  # evicted (it stopped polling): rejoin as Kafka's client does
            if self.rebalancing:
                return "wait" if member.member_id in self._joined else "revoke"
            return "assign" if member.generation != self.generation else "wait"

    def rejoined(self, member: GroupMember) -> None:
        """The member revoked its partitions and asks to join the new generation."""
        with self._lock:
            if member.member_id in self.members:
                self._joined.add(member.member_id)
                self._maybe_complete()

    def assigned_to(self, member: GroupMember) -> set[TopicPartition]:
        """The member's partitions in the current generation; it now holds that generation."""
        with self._lock:
            member.generation = self.generation
            return set(self.assignment.get(member.member_id, ()))

    def _evict_dead(self) -> None:
        now = time.monotonic()
        dead = [m for m in self.members.values() if not m.alive(now)]
        for m in dead:
            del self.members[m.member_id]
            m.evicted_at = now
        if dead:
            self._begin_rebalance()

    def _begin_rebalance(self) -> None:
        self.rebalancing, self._joined = True, set()
        self._maybe_complete()
        self._notify()

    def _maybe_complete(self) -> None:
        if not self.rebalancing or not set(self.members) <= self._joined:
            return
        self.generation += 1
        self.rebalancing = False
        self.assignment = self._assign() if self.members else {}
        self._notify()

    def _assign(self) -> Assignment:
        members = {mid: m.topics for mid, m in sorted(self.members.items())}
        topics = sorted(set().union(*members.values()))
        tps = [TopicPartition(t, p) for t in topics for p in sorted(self._partitions_of(t) or ())]
        strategy = next(iter(self.members.values())).strategy  # the oldest member leads
        assignor = ASSIGNORS.get(strategy, roundrobin)
        return assignor(members, tps, self.assignment)

    # -- offsets -----------------------------------------------------------------------------

    def commit(self, member: GroupMember, offsets: Mapping[TopicPartition, int]) -> None:
        """Store the offsets; CommitFailedError when the member's generation is over."""
        with self._lock:
            if member.member_id not in self.members or member.generation != self.generation:
                raise CommitFailedError(
                    f"group {self.group_id} has rebalanced since this member's assignment: "
                    "its partitions belong to the new generation's owners"
                )
            self._committed.update(offsets)

    def committed(self, tp: TopicPartition) -> int | None:
        """The group's committed offset of a partition, None when none was committed."""
        with self._lock:
            return self._committed.get(tp)


# -- assignors: members (id -> subscribed topics, sorted by id), partitions, previous ------------


def roundrobin(
    members: Mapping[str, frozenset[str]], tps: list[TopicPartition], previous: Assignment
) -> Assignment:
    """aiokafka's default: partitions in order dealt to the subscribed members in turn."""
    out: Assignment = {m: set() for m in members}
    order, turn = list(members), 0
    for tp in tps:
        for _ in range(len(order)):
            m = order[turn % len(order)]
            turn += 1
            if tp.topic in members[m]:
                out[m].add(tp)
                break
    return out


def range_assignor(
    members: Mapping[str, frozenset[str]], tps: list[TopicPartition], previous: Assignment
) -> Assignment:
    """Per topic, contiguous ranges; the first members get one more."""
    out: Assignment = {m: set() for m in members}
    for topic in sorted({tp.topic for tp in tps}):
        ours = [tp for tp in tps if tp.topic == topic]
        readers = [m for m in members if topic in members[m]]
        each, extra = divmod(len(ours), len(readers))
        start = 0
        for i, m in enumerate(readers):
            n = each + (1 if i < extra else 0)
            out[m].update(ours[start : start + n])
            start += n
    return out


def sticky(
    members: Mapping[str, frozenset[str]], tps: list[TopicPartition], previous: Assignment
) -> Assignment:
    """Balanced; each member keeps what it had where balance allows (the sticky assignor)."""
    eligible = {tp: [m for m in members if tp.topic in members[m]] for tp in tps}
    out: dict[str, list[TopicPartition]] = {m: [] for m in members}
    most = -(-len(tps) // max(1, len(members)))
    for m in members:
        for tp in sorted(previous.get(m, ())):
            if m in eligible.get(tp, ()) and len(out[m]) < most:
                out[m].append(tp)
                eligible[tp] = []  # taken
    for tp in tps:
        if eligible[tp]:
            owner = min(eligible[tp], key=lambda m: (len(out[m]), m))
            out[owner].append(tp)
    for _ in range(len(tps)):  # move one at a time from the fullest to the emptiest
        hi = max(out, key=lambda m: (len(out[m]), m))
        lo = min(out, key=lambda m: (len(out[m]), m))
        movable = [tp for tp in out[hi] if tp.topic in members[lo]]
        if len(out[hi]) - len(out[lo]) <= 1 or not movable:
            break
        out[hi].remove(movable[-1])
        out[lo].append(movable[-1])
    return {m: set(ps) for m, ps in out.items()}


ASSIGNORS = {"roundrobin": roundrobin, "range": range_assignor, "sticky": sticky}
