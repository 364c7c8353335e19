"""Quotas and weighted fair share: which tenant's waiting job a free trainer may take, and first.

Pure and small, so the trainer's picker, the registry's queue view and ``bench/fairshare_sim.py``
run the same rule. The inputs are plain: each tenant's :class:`Share` (weight, cohort, a
:class:`Quota` per resource class), a :class:`Ledger` of who runs what now (a trainer folds it
from the heartbeats, ``scheduling/usage.py``), and the waiting jobs (:class:`Candidate`).

The rule (docs/ARCHITECTURE.md, "Scheduling"):

1. A job is *admissible* when its tenant has room in its class: within its nominal quota, or,
   in a cohort, up to ``nominal + borrowing limit`` while the cohort as a whole stays within the
   sum of its members' nominal quotas (idle quota is lent, as Kueue's cohorts do). Others wait,
   "tenant over quota".
2. A job within its tenant's own quota that has waited ``overdue_s(aging_s)`` goes before any
   that has not, oldest first, whatever its class, tenant or priority: that bounds every wait
   of a job its tenant's quota covers (a job beyond it waits for its tenant's own jobs to end,
   or for idle quota to borrow: that wait is the tenant's, as the quota says).
3. Then jobs on their tenant's own quota before jobs on borrowed quota; among each, the tenant
   with the lowest weighted dominant share first (its running jobs' share of the fleet's
   trainers or of its GPUs, whichever is larger, over its weight), then the higher aged
   priority, the heavier weight (tenants idle at the same moment tie on share: without it the
   older job wins, and on a small fleet every tenant gets an equal turn whatever its weight),
   the more demanding class, the older job.

A tenant's *share* is its running jobs' at this instant, or, with a usage window (the
trainer's default, :class:`UsageWindow`), its trainer- and GPU-seconds over the last
``window_s``, so a turn one trainer could not see (or took a heartbeat late) is paid back on a
later pick instead of lost.
"""

from __future__ import annotations

from collections import deque
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field

from sparktrainer.contracts.scheduling import TOP_LEVEL, Waiting, class_rank, effective_level
from sparktrainer.contracts.tenants import DEFAULT_TENANT, Tenants

OVER_QUOTA = "tenant over quota"
NO_ROOM, OWN, BORROWED = 0, 1, 2  # how a job would run: not now, on its own quota, on a loan


def overdue_s(aging_s: float) -> float:
    """How long any job waits at most before it goes first: a low job's climb, then one more."""
    return (TOP_LEVEL + 1) * aging_s


@dataclass(frozen=True)
class Quota:
    """A tenant's nominal quota in one class (None: no limit) and what it may borrow above it."""

    jobs: int | None = None
    gpus: int | None = None
    borrow_jobs: int | None = None  # None: as much as the cohort has idle
    borrow_gpus: int | None = None


NO_LIMIT = Quota()


@dataclass(frozen=True)
class Share:
    """What the fair share knows of a tenant: its weight, its cohort, its quotas per class."""

    weight: float = 1.0
    cohort: str | None = None
    quotas: Mapping[str, Quota] = field(default_factory=dict)

    def quota(self, resource_class: str) -> Quota:
        return self.quotas.get(resource_class, NO_LIMIT)


EQUAL = Share()


@dataclass(frozen=True)
class Candidate:
    """A waiting job as the fair share sees it: what the pick rule compares, and whose it is."""

    waiting: Waiting
    tenant: str = DEFAULT_TENANT
    gpus: int = 0  # the GPUs it holds while it runs


@dataclass
class Ledger:
    """Who runs what now: running jobs and GPUs per (tenant, class), and the fleet's size.

    :param trainers: how many live trainers there are (job slots of the fleet).
    :param gpus: how many GPUs they have together.
    :param window_s: with a usage window (> 0), the share is ``seconds`` / ``gpu_seconds``
        over it (filled by :meth:`UsageWindow.fill`); 0: running jobs and GPUs now.
    """

    trainers: int = 1
    gpus: int = 0
    jobs_held: dict[tuple[str, str], int] = field(default_factory=dict)
    gpus_held: dict[tuple[str, str], int] = field(default_factory=dict)
    window_s: float = 0.0
    seconds: dict[str, float] = field(default_factory=dict)  # trainer-seconds per tenant
    gpu_seconds: dict[str, float] = field(default_factory=dict)

    def hold(self, tenant: str, resource_class: str, gpus: int, sign: int = 1) -> None:
        """A job starts (sign 1) or ends (sign -1)."""
        key = (tenant, resource_class)
        self.jobs_held[key] = self.jobs_held.get(key, 0) + sign
        self.gpus_held[key] = self.gpus_held.get(key, 0) + sign * gpus

    def dominant_share(self, tenant: str, weight: float) -> float:
        """The larger of its share of trainers and of GPUs (now, or over the window), over its
        weight."""
        if self.window_s > 0:
            slot_s, gpu_s = self.trainers * self.window_s, self.gpus * self.window_s
            used = self.seconds.get(tenant, 0.0) / max(slot_s, 1e-9)
            gpu_used = self.gpu_seconds.get(tenant, 0.0) / gpu_s if gpu_s else 0.0
            return max(used, gpu_used) / max(weight, 1e-9)
        jobs = sum(n for (t, _), n in self.jobs_held.items() if t == tenant)
        gpus = sum(n for (t, _), n in self.gpus_held.items() if t == tenant)
        share = max(jobs / max(1, self.trainers), gpus / self.gpus if self.gpus else 0.0)
        return share / max(weight, 1e-9)

    def held(self, tenants: Sequence[str], resource_class: str) -> tuple[int, int]:
        """Running jobs and GPUs of these tenants in one class."""
        keys = [(t, resource_class) for t in tenants]
        return (
            sum(self.jobs_held.get(k, 0) for k in keys),
            sum(self.gpus_held.get(k, 0) for k in keys),
        )


@dataclass
class _Run:
    tenant: str
    resource_class: str
    gpus: int
    start_s: float
    end_s: float = 0.0


def _overlap(a: float, b: float, lo: float) -> float:
    return max(0.0, b - max(a, lo))


class UsageWindow:
    """Trainer- and GPU-seconds per tenant over the last ``window_s``, for :class:`Ledger`.

    Runs are started and ended per ``key`` (the trainer that runs it: one run at a time). A
    running job is charged from its start for as long as it has run or, if longer, the mean
    length of its class's ended runs in the window: a job that has just started weighs at once
    what it will likely take, so a trainer that frees a moment later does not see its tenant
    as idle. Bounded: at most ``max_runs`` ended runs are kept (the oldest go first).
    """

    def __init__(self, window_s: float, max_runs: int = 10_000) -> None:
        self.window_s = window_s
        self._open: dict[str, _Run] = {}
        self._ended: deque[_Run] = deque(maxlen=max_runs)

    def __repr__(self) -> str:
        return f"UsageWindow(window_s={self.window_s}, running={len(self._open)})"

    def start(self, key: str, tenant: str, resource_class: str, gpus: int, at_s: float) -> None:
        """``key`` starts a run (ending the one it had, if any)."""
        self.end(key, at_s)
        self._open[key] = _Run(tenant, resource_class, gpus, at_s)

    def end(self, key: str, at_s: float) -> None:
        """``key``'s run ends (nothing when it has none)."""
        run = self._open.pop(key, None)
        if run is not None:
            run.end_s = max(at_s, run.start_s)
            self._ended.append(run)

    def running(self) -> set[str]:
        return set(self._open)

    def fill(self, ledger: Ledger, now_s: float) -> Ledger:
        """Set ``ledger``'s window and each tenant's seconds in it, as of ``now_s``."""
        lo = now_s - self.window_s
        while self._ended and self._ended[0].end_s <= lo:  # ends come about in order
            self._ended.popleft()
        lengths: dict[str, list[float]] = {}
        seconds: dict[str, float] = {}
        gpu_seconds: dict[str, float] = {}
        for r in self._ended:
            lengths.setdefault(r.resource_class, []).append(r.end_s - r.start_s)
            self._charge(r, _overlap(r.start_s, r.end_s, lo), seconds, gpu_seconds)
        typical = {cls: sum(x) / len(x) for cls, x in lengths.items()}
        for r in self._open.values():
            length = max(now_s - r.start_s, typical.get(r.resource_class, 0.0))
            self._charge(r, _overlap(r.start_s, r.start_s + length, lo), seconds, gpu_seconds)
        ledger.window_s, ledger.seconds, ledger.gpu_seconds = self.window_s, seconds, gpu_seconds
        return ledger

    @staticmethod
    def _charge(r: _Run, s: float, seconds: dict[str, float], gpus: dict[str, float]) -> None:
        seconds[r.tenant] = seconds.get(r.tenant, 0.0) + s
        if r.gpus:
            gpus[r.tenant] = gpus.get(r.tenant, 0.0) + s * r.gpus


def _fits(held: int, need: int, limit: int | None) -> bool:
    return limit is None or held + need <= limit


def _ceiling(nominal: int | None, borrow: int | None) -> int | None:
    return None if nominal is None or borrow is None else nominal + borrow


def shares_of(tenants: Tenants) -> dict[str, Share]:
    """What the fair share needs of a tenants file (``contracts/tenants.py``)."""
    return {
        t.name: Share(
            weight=float(t.weight),
            cohort=t.cohort,
            quotas={
                cls: Quota(q.running_jobs, q.gpus, q.borrow_jobs, q.borrow_gpus)
                for cls, q in t.quotas.items()
            },
        )
        for t in tenants.tenants
    }


class FairShare:
    """The pick rule over tenants' shares; ``shares`` lacks a tenant: weight 1, no quota.

    :param shares: each configured tenant's weight, cohort and quotas.
    :param aging_s: a waiting job rises one priority level per this many seconds.
    :param priorities: False: levels are ignored (oldest first within the fair share).
    """

    def __init__(
        self, shares: Mapping[str, Share], aging_s: float, priorities: bool = True
    ) -> None:
        self.shares = dict(shares)
        self.aging_s = aging_s
        self.priorities = priorities
        self.overdue_ms = overdue_s(aging_s) * 1000
        self.cohorts: dict[str, list[str]] = {}
        for name, share in self.shares.items():
            if share.cohort:
                self.cohorts.setdefault(share.cohort, []).append(name)

    def share(self, tenant: str) -> Share:
        return self.shares.get(tenant, EQUAL)

    def room(self, c: Candidate, ledger: Ledger) -> int:
        """OWN: within its tenant's nominal quota; BORROWED: on idle cohort quota; 0: none."""
        share, cls = self.share(c.tenant), c.waiting.resource_class
        quota = share.quota(cls)
        jobs, gpus = ledger.held([c.tenant], cls)
        if _fits(jobs, 1, quota.jobs) and _fits(gpus, c.gpus, quota.gpus):
            return OWN
        if not share.cohort:
            return NO_ROOM
        if not _fits(jobs, 1, _ceiling(quota.jobs, quota.borrow_jobs)):
            return NO_ROOM
        if not _fits(gpus, c.gpus, _ceiling(quota.gpus, quota.borrow_gpus)):
            return NO_ROOM
        return BORROWED if self._cohort_has_room(share.cohort, cls, c.gpus, ledger) else NO_ROOM

    def admits(self, c: Candidate, ledger: Ledger) -> bool:
        """Whether the job's tenant has room for it in its class (own quota, or borrowed)."""
        return self.room(c, ledger) != NO_ROOM

    def _cohort_has_room(self, cohort: str, cls: str, gpus: int, ledger: Ledger) -> bool:
        """Whether the cohort's members together stay within their nominal quotas."""
        members = self.cohorts.get(cohort, [])
        quotas = [self.share(m).quota(cls) for m in members]
        held_jobs, held_gpus = ledger.held(members, cls)
        nominal_jobs = [q.jobs for q in quotas if q.jobs is not None]
        nominal_gpus = [q.gpus for q in quotas if q.gpus is not None]
        jobs_ok = len(nominal_jobs) < len(quotas) or held_jobs + 1 <= sum(nominal_jobs)
        gpus_ok = len(nominal_gpus) < len(quotas) or held_gpus + gpus <= sum(nominal_gpus)
        return jobs_ok and gpus_ok

    def pick(self, candidates: Sequence[Candidate], ledger: Ledger, now_ms: int) -> int | None:
        """The index of the candidate to start now; None when every one is over its quota."""
        best: int | None = None
        best_key: tuple[object, ...] = ()
        shares: dict[str, float] = {}  # one dominant share per tenant and pick
        for i, c in enumerate(candidates):
            room = self.room(c, ledger)
            if room == NO_ROOM:
                continue
            key = self._key(c, room, ledger, now_ms, shares)
            if best is None or key < best_key:  # type: ignore[operator]
                best, best_key = i, key
        return best

    def order(self, c: Candidate, ledger: Ledger, now_ms: int) -> tuple[object, ...]:
        """Sort key, ascending = taken first (the rule in the module docstring)."""
        return self._key(c, self.room(c, ledger), ledger, now_ms, {})

    def _key(
        self, c: Candidate, room: int, ledger: Ledger, now_ms: int, shares: dict[str, float]
    ) -> tuple[object, ...]:
        w = c.waiting
        if room == OWN and now_ms - w.since_ms >= self.overdue_ms:
            return (0, w.since_ms, w.where)
        weight = self.share(c.tenant).weight
        if c.tenant not in shares:
            shares[c.tenant] = ledger.dominant_share(c.tenant, weight)
        waited_s = max(0, now_ms - w.since_ms) / 1000
        level = effective_level(w.priority, waited_s, self.aging_s, self.priorities)
        rank = -class_rank(w.resource_class)
        return (room, shares[c.tenant], -level, -weight, rank, w.since_ms, w.where)

    def why_waiting(self, c: Candidate, ledger: Ledger) -> str | None:
        """``tenant over quota`` when its tenant has no room for it, else None."""
        return None if self.admits(c, ledger) else OVER_QUOTA
