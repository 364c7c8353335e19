"""Quotas, cohort borrowing, weighted dominant share, the overdue rule (contracts/fairshare)."""

from __future__ import annotations

from sparktrainer.contracts.fairshare import (
    BORROWED,
    NO_ROOM,
    OVER_QUOTA,
    OWN,
    Candidate,
    FairShare,
    Ledger,
    Quota,
    Share,
    overdue_s,
    shares_of,
)
from sparktrainer.contracts.scheduling import Waiting
from sparktrainer.contracts.tenants import Tenants

NOW = 10_000_000
AGING_S = 60.0


def job(
    tenant: str, cls: str = "cpu", prio: str = "normal", age_s: float = 0, n: int = 0, gpus: int = 0
) -> Candidate:
    w = Waiting(prio, cls, NOW - int(age_s * 1000), ("t", 0, n))
    return Candidate(w, tenant, gpus)


def two_teams(borrow: int = 2) -> FairShare:
    return FairShare(
        {
            "a": Share(2.0, "ml", {"cpu": Quota(jobs=2, borrow_jobs=borrow)}),
            "b": Share(1.0, "ml", {"cpu": Quota(jobs=1, borrow_jobs=borrow)}),
            "solo": Share(1.0, None, {"cpu": Quota(jobs=1)}),
        },
        AGING_S,
    )


def test_own_quota_then_borrowing_idle_cohort_quota_up_to_the_limit() -> None:
    rule, ledger = two_teams(borrow=1), Ledger(trainers=10)
    assert rule.room(job("a"), ledger) == OWN
    ledger.hold("a", "cpu", 0)
    ledger.hold("a", "cpu", 0)
    assert rule.room(job("a"), ledger) == BORROWED  # b's quota is idle
    ledger.hold("a", "cpu", 0)
    assert rule.room(job("a"), ledger) == NO_ROOM  # borrowing limit 1 reached
    assert rule.room(job("b"), ledger) == OWN  # a loan never takes a tenant's own quota
    assert rule.why_waiting(job("a"), ledger) == OVER_QUOTA


def test_no_borrowing_when_the_cohort_is_full_or_without_a_cohort() -> None:
    rule, ledger = two_teams(), Ledger(trainers=10)
    ledger.hold("a", "cpu", 0)
    ledger.hold("a", "cpu", 0)
    ledger.hold("b", "cpu", 0)
    assert rule.room(job("a"), ledger) == NO_ROOM  # the cohort's 3 are all held
    ledger.hold("solo", "cpu", 0)
    assert rule.room(job("solo"), ledger) == NO_ROOM
    assert rule.room(job("unknown"), ledger) == OWN  # no quota configured: no limit


def test_gpu_quota_counts_gpus() -> None:
    rule = FairShare({"a": Share(quotas={"multi-gpu": Quota(gpus=4)})}, AGING_S)
    ledger = Ledger(trainers=4, gpus=16)
    assert rule.room(job("a", "multi-gpu", gpus=4), ledger) == OWN
    ledger.hold("a", "multi-gpu", 4)
    assert rule.room(job("a", "multi-gpu", gpus=2), ledger) == NO_ROOM


def test_lowest_weighted_dominant_share_first() -> None:
    rule = FairShare({"a": Share(2.0), "b": Share(1.0)}, AGING_S)
    ledger = Ledger(trainers=10, gpus=4)
    ledger.hold("a", "cpu", 0)
    ledger.hold("a", "cpu", 0)  # a: 2/10 over weight 2 = 0.1
    ledger.hold("b", "gpu", 1)  # b: max(1/10, 1/4) over 1 = 0.25: GPUs dominate
    assert rule.pick([job("b", n=1), job("a", n=2)], ledger, NOW) == 1
    ledger.hold("a", "gpu", 2)  # a: 2/4 GPUs = 0.5 over 2 = 0.25; ties go to priority
    assert rule.pick([job("a", prio="normal"), job("b", prio="high")], ledger, NOW) == 1


def test_at_equal_shares_the_heavier_weight_goes_first_so_two_slots_split_by_weight() -> None:
    rule = FairShare({"a": Share(2.0), "b": Share(1.0), "c": Share(1.0)}, AGING_S)
    ledger = Ledger(trainers=2)
    older_b, newer_a = job("b", age_s=9, n=1), job("a", age_s=1, n=2)
    assert rule.pick([older_b, newer_a], ledger, NOW) == 1  # both idle: the heavier weight
    ledger.hold("a", "cpu", 0)
    assert rule.pick([newer_a, older_b], ledger, NOW) == 1  # a holds one: b is lower
    ledger.hold("b", "cpu", 0)
    ledger.hold("a", "cpu", 0, sign=-1)  # a's job ends while b's runs: a again, not c
    assert rule.pick([job("c", age_s=9, n=3), newer_a], ledger, NOW) == 1


def test_own_quota_before_borrowed() -> None:
    rule, ledger = two_teams(), Ledger(trainers=10)
    for _ in range(2):
        ledger.hold("a", "cpu", 0)
    # a would borrow, b runs on its own quota, though a's share would be lower than b's
    assert rule.pick([job("a", prio="high", age_s=50), job("b", n=1)], ledger, NOW) == 1


def test_a_single_tenant_keeps_the_priority_rule() -> None:
    rule, ledger = FairShare({}, AGING_S), Ledger()
    picked = rule.pick(
        [job("t", "gpu", "normal", 1), job("t", "cpu", "high", 0, 1), job("t", "gpu", "high", 2)],
        ledger,
        NOW,
    )
    assert picked == 2  # high before normal; a GPU job before a CPU job of the same level


def test_aged_cpu_job_beats_a_stream_of_fresh_high_gpu_jobs() -> None:
    """Issue 17: class was compared before age, so fresh high GPU jobs starved a CPU job."""
    rule, ledger = FairShare({}, AGING_S), Ledger()
    cpu_low = job("t", "cpu", "low", age_s=overdue_s(AGING_S) - 1, n=0)
    fresh = [job("t", "gpu", "high", age_s=0, n=i) for i in range(1, 4)]
    assert rule.pick([cpu_low, *fresh], ledger, NOW) != 0  # not yet overdue
    cpu_low = job("t", "cpu", "low", age_s=overdue_s(AGING_S), n=0)
    assert rule.pick([*fresh, cpu_low], ledger, NOW) == 3


def test_overdue_jobs_oldest_first_and_every_pick_over_quota_is_none() -> None:
    rule, ledger = two_teams(), Ledger(trainers=10)
    old = [job("a", age_s=overdue_s(AGING_S) + s, n=s) for s in (5, 9)]
    assert rule.pick(old, ledger, NOW) == 1
    full = two_teams(borrow=0)
    for _ in range(2):
        ledger.hold("a", "cpu", 0)
    assert full.pick(old, ledger, NOW) is None


def test_a_tenants_file_gives_the_shares() -> None:
    tenants = Tenants.model_validate(
        {
            "tenants": [
                {"name": "a", "weight": 3, "cohort": "ml",
                 "quotas": {"gpu": {"running_jobs": 1, "gpus": 1, "borrow_jobs": 1}}},
                {"name": "b", "cohort": "ml", "quotas": {"gpu": {"running_jobs": 2}}},
            ]
        }
    )  # fmt: skip
    rule, ledger = FairShare(shares_of(tenants), AGING_S), Ledger(trainers=4, gpus=4)
    assert rule.share("a").weight == 3.0 and rule.share("default").quotas == {}
    ledger.hold("a", "gpu", 1)
    # a's GPU quota is 1 and its GPU borrowing unlimited: it borrows b's idle job quota
    assert rule.room(job("a", "gpu", gpus=1), ledger) == BORROWED
    ledger.hold("a", "gpu", 1)
    assert rule.room(job("a", "gpu", gpus=1), ledger) == NO_ROOM  # borrow_jobs 1 used
