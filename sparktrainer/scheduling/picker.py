"""The trainer's waiting jobs, and the pick rule: highest (aged) priority first.

Records are kept per partition, oldest first; a partition is paused while any of its records
wait here (with tenants: while ``lookahead`` of them do), and every other partition keeps being
fetched, so a job of higher priority that
arrives while a job trains is known before the slot frees. When it frees, the heads of the
partitions compete by ``contracts.scheduling.Waiting.order`` (level after aging, class, age).
The rule is written down in docs/ARCHITECTURE.md ("Scheduling").
"""

from __future__ import annotations

import time
from collections import OrderedDict, deque
from collections.abc import Callable

from aiokafka import TopicPartition

from sparktrainer.bus.waiting import tp_of
from sparktrainer.contracts.envelope import EnvelopeError
from sparktrainer.contracts.events import JobValidated
from sparktrainer.contracts.fairshare import Candidate, FairShare, Ledger
from sparktrainer.contracts.records import Received, decode_received
from sparktrainer.contracts.scheduling import Waiting
from sparktrainer.contracts.tenants import DEFAULT_TENANT
from sparktrainer.contracts.topics import ROUTES

BOOK_MAX = 256  # started and given-back records remembered
SETTLE_S = 0.5  # after an assignment: one fetch round, so every partition's head is seen


def now_ms() -> int:
    """Wall-clock milliseconds (record timestamps are wall clock too)."""
    return time.time_ns() // 1_000_000


class PriorityWaiting:
    """Waiting records by partition; :meth:`take` returns the best head by the pick rule.

    :param aging_s: a waiting job rises one level per this many seconds (0: never).
    :param priorities: False: oldest first, whatever the priority (for comparison).
    :param settle_s: after an assignment, how long to wait for every partition's head.
    :param clock: wall-clock milliseconds (tests pass their own).
    :param fair: the tenants' quotas and fair share (``contracts/fairshare.py``); None: one
        tenant, the heads of the partitions compete by the priority rule alone.
    :param ledger: who runs what across the fleet now (``scheduling/usage.py``), with ``fair``.
    :param lookahead: with ``fair``, a partition is fetched on until this many of its records
        wait (any tenant's next job in it can be picked); without, it pauses at its first.
    """

    def __init__(
        self,
        aging_s: float,
        *,
        priorities: bool = True,
        settle_s: float = SETTLE_S,
        clock: Callable[[], int] = now_ms,
        fair: FairShare | None = None,
        ledger: Callable[[], Ledger] = Ledger,
        lookahead: int = 1,
    ) -> None:
        self.aging_s = aging_s
        self.priorities = priorities
        self.settle_s = settle_s
        self.clock = clock
        self.fair = fair
        self.ledger = ledger
        self.lookahead = max(1, lookahead) if fair is not None else 1
        self._owners: dict[tuple[TopicPartition, int], tuple[str, int]] = {}
        self._queues: dict[TopicPartition, deque[Received]] = {}
        self._settled_at = 0
        # A partition whose last waiting record was just taken: its next records may still be
        # on the way (a record skipped at once, unreadable, frees the slot before they come).
        self._drained: dict[TopicPartition, tuple[int, Waiting]] = {}
        # Records taken (when) and records given back (their wait so far, as a since): a job
        # that ran and was preempted keeps the age it had when it started, not its run time.
        self._started: OrderedDict[tuple[TopicPartition, int], int] = OrderedDict()
        self._since: OrderedDict[tuple[TopicPartition, int], int] = OrderedDict()

    def __repr__(self) -> str:
        heads = {f"{tp.topic}/{tp.partition}": len(q) for tp, q in self._queues.items() if q}
        return f"PriorityWaiting(aging_s={self.aging_s}, waiting={heads})"

    def add(self, rec: Received) -> None:
        self._queues.setdefault(tp_of(rec), deque()).append(rec)
        if self.fair is not None:
            self._owners[(tp_of(rec), rec.offset)] = _owner(rec)

    def put_back(self, rec: Received) -> None:
        """A record started and given back (preempted): the head of its partition again, with
        the age it had when it started (its run does not count as waiting)."""
        key = (tp_of(rec), rec.offset)
        self._since[key] = self.requeued(rec).since_ms
        _bound(self._since)
        self._started.pop(key, None)
        self._queues.setdefault(key[0], deque()).appendleft(rec)
        if self.fair is not None:
            self._owners[key] = _owner(rec)

    def requeued(self, rec: Received) -> Waiting:
        """What the pick rule would know of a running record were it given back now."""
        w = self.waiting(rec)
        started = self._started.get((tp_of(rec), rec.offset))
        if started is None:
            return w
        since = min(self.clock(), w.since_ms + max(0, self.clock() - started))
        return Waiting(w.priority, w.resource_class, since, w.where)

    def would_take_over(self, running: Received) -> Received | None:
        """The record the pick rule would take now were ``running`` given back; None when that
        is ``running`` itself or nothing (what a preemption may give way to: never a loop)."""
        key = (tp_of(running), running.offset)
        kept = self._since.get(key), self._started.get(key)
        self.put_back(running)
        try:
            best = self._best(self.clock())
        finally:
            self._queues[key[0]].popleft()
            self._owners.pop(key, None)
            if not self._queues[key[0]]:
                del self._queues[key[0]]
            for book, value in zip((self._since, self._started), kept, strict=True):
                if value is None:
                    book.pop(key, None)
                else:
                    book[key] = value
        return None if best is None or best is running else best

    def waiting(self, rec: Received) -> Waiting:
        """What the pick rule knows of a record: its topic's route, and its timestamp."""
        resource_class, priority = ROUTES.get(rec.topic, ("", "low"))
        since = self._since.get((tp_of(rec), rec.offset))
        if since is None:
            since = rec.timestamp_ms if rec.timestamp_ms is not None else self.clock()
        return Waiting(priority, resource_class, since, (rec.topic, rec.partition, rec.offset))

    def take(self) -> Received | None:
        if self.clock() < self._settled_at:
            return None
        now = self.clock()
        best = self._best(now)
        if best is None or self._behind_a_drained_partition(best, now):
            return None
        tp = tp_of(best)
        self._queues[tp].remove(best)
        self._owners.pop((tp, best.offset), None)
        self._started[(tp, best.offset)] = now
        _bound(self._started)
        taken = best
        if not self._queues[tp]:
            self._drained[tp] = (now, self.waiting(taken))
        return taken

    def _best(self, now: int) -> Received | None:
        """The heads by the priority rule; with ``fair``, each tenant's first record of each
        partition by the fair share (None when every one is over its tenant's quota)."""
        if self.fair is None:
            heads = [q[0] for q in self._queues.values() if q]
            if not heads:
                return None
            return min(
                heads, key=lambda r: self.waiting(r).order(now, self.aging_s, self.priorities)
            )
        firsts: list[Received] = []
        cands: list[Candidate] = []
        for tp, q in self._queues.items():
            seen: set[str] = set()
            for r in q:
                tenant, gpus = self._owners.get((tp, r.offset), (DEFAULT_TENANT, 0))
                if tenant not in seen:
                    seen.add(tenant)
                    firsts.append(r)
                    cands.append(Candidate(self.waiting(r), tenant, gpus))
        i = self.fair.pick(cands, self.ledger(), now) if cands else None
        return None if i is None else firsts[i]

    def _behind_a_drained_partition(self, best: Received, now: int) -> bool:
        """Whether a partition drained less than ``settle_s`` ago may hold a better record."""
        settle_ms = int(self.settle_s * 1000)
        self._drained = {
            tp: d
            for tp, d in self._drained.items()
            if now - d[0] < settle_ms and not self._queues.get(tp)
        }
        mine = self.waiting(best).order(now, self.aging_s, self.priorities)
        return any(
            w.order(now, self.aging_s, self.priorities) < mine for _, w in self._drained.values()
        )

    def drop(self, tps: set[TopicPartition]) -> None:
        self._owners = {k: v for k, v in self._owners.items() if k[0] not in tps}
        for book in (self._since, self._started):
            for key in [k for k in book if k[0] in tps]:
                del book[key]
        for tp in tps:
            self._queues.pop(tp, None)
            self._drained.pop(tp, None)

    def clear(self) -> None:
        self._owners.clear()
        self._since.clear()
        self._started.clear()
        self._queues.clear()
        self._drained.clear()

    def assigned(self, tps: set[TopicPartition]) -> None:
        self._settled_at = self.clock() + int(self.settle_s * 1000)

    def to_pause(self, assigned: set[TopicPartition], concurrency: int) -> set[TopicPartition]:
        return {tp for tp in assigned if len(self._queues.get(tp, ())) >= self.lookahead}

    def __len__(self) -> int:
        return sum(len(q) for q in self._queues.values())


def _bound(book: OrderedDict[tuple[TopicPartition, int], int]) -> None:
    """Keep the latest ``BOOK_MAX`` entries (a trainer runs one job at a time)."""
    while len(book) > BOOK_MAX:
        book.popitem(last=False)


def _owner(rec: Received) -> tuple[str, int]:
    """The tenant and GPUs of a validated job (default, 0 for a record that is none: the
    trainer skips it when it starts, at once)."""
    try:
        job = decode_received(rec, JobValidated)
    except EnvelopeError:
        return DEFAULT_TENANT, 0
    return job.tenant, job.resources.gpus
