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
"""

from __future__ import annotations

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
    """

    trainers: int = 1
    gpus: int = 0
    jobs_held: dict[tuple[str, str], int] = field(default_factory=dict)
    gpus_held: dict[tuple[str, str], int] = field(default_factory=dict)

    def hold(self, tenant: str, resource_class: str, gpus: int, sign: int = 1) -> None:
        """A job starts (sign 1) or ends (sign -1)."""
        key = (tenant, resource_class)
        self.jobs_held[key] = self.jobs_held.get(key, 0) + sign
        self.gpus_held[key] = self.gpus_held.get(key, 0) + sign * gpus

    def dominant_share(self, tenant: str, weight: float) -> float:
        """The larger of its share of trainers and of GPUs, over its weight."""
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
