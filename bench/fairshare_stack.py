"""Fair share on the real stack: 3 tenants x N tiny jobs on 2 trainers, each tenant's share of
trainer-seconds while all were backlogged, against its weight.

    nice -n 19 python bench/fairshare_stack.py [--jobs 20] [--epochs 3] [--rounds 3] [--out F]

Its own embedded stack (tansu + SeaweedFS), a tenants file of alpha (weight 2), beta and gamma
(1 each), one validator and two trainers in this process (each with its warm worker), the
trainers' real pick rule (``contracts/fairshare.py`` through ``scheduling/picker.py``, the
fleet's ledger from their heartbeats). Every job is submitted at once, interleaved by tenant,
on its tenant's door (``topics.submission_topic``), which establishes its tenant, to two
trainers started for the round (``--backlog-first``: started once every job is validated).
A trainer picks among each tenant's first job in each of the partitions it is assigned
(``--partitions`` of each topic), fetched up to its look-ahead; each round has its own three
tenants, since the share counts trainer-seconds over an hour (``round_tenants``).

Trainer-seconds come from the accounting itself: each attempt's ``usage`` on its end event (the
trainer's clock), placed on the time line as [end - wall_s, end]. A tenant is backlogged until
its last job starts; the window is from the first start to the first tenant's last start, and a
tenant's share is its trainer-seconds in the window over everyone's; the goal is each tenant's
mean over the rounds within 10% of its weight's share. Bounded: N jobs a tenant (at most 50),
at most 10 rounds, ``--timeout`` seconds a round.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import os
import sys
import tempfile
import time
import uuid
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

os.environ.setdefault("OMP_NUM_THREADS", "1")  # 2 workers on a small machine: no oversubscription
sys.path.insert(0, str(Path(__file__).resolve().parent))

from benchkit import EventTail, bench_stack, emit

from sparktrainer.bus.kafka import make_producer
from sparktrainer.contracts.events import JobCancelled, JobCompleted, JobFailed, JobValidated
from sparktrainer.contracts.topics import JOBS_LIFECYCLE, VALIDATED_TOPICS, submission_topic
from sparktrainer.services.trainer import TrainerService
from sparktrainer.services.validator import build_runtime
from sparktrainer.settings import Settings
from sparktrainer.storage.s3 import ObjectStore

WEIGHTS = {"alpha": 2, "beta": 1, "gamma": 1}
ENDS = (JobCompleted, JobFailed, JobCancelled)
GOAL_RELATIVE = 0.10  # each share within 10% of its weight's share


def tiny_job(tenant: str, n: int, epochs: int) -> dict[str, Any]:
    """A digits MLP of class cpu: a second or two of training per epoch on one core."""
    return {"job_id": f"fs-{tenant}-{n:02d}-{uuid.uuid4().hex[:6]}", "type": "train",
            "framework": "pytorch",
            "config": {"architecture": "custom", "input_size": 64, "output_size": 10,
                       "hidden_layers": [128, 64], "epochs": epochs, "batch_size": 16,
                       "data": {"source": "digits"}}}  # fmt: skip


def round_tenants(r: int) -> dict[str, str]:
    """Round ``r``'s own three tenants (``alpha-0``, ...): the fair share counts trainer-seconds
    over an hour, and a round's share must not carry the last round's."""
    return {t: f"{t}-{r}" for t in WEIGHTS}


def tenants_file(home: Path, rounds: int) -> Path:
    path = home / "tenants.json"
    tenants = [
        {"name": round_tenants(r)[t], "weight": w}
        for r in range(rounds)
        for t, w in WEIGHTS.items()
    ]
    path.write_text(json.dumps({"tenants": tenants}))
    return path


def validator_reads_doors(runtime: Any, rounds: int) -> None:
    """The validator must read every tenant's door, or the jobs would never be answered."""
    names = [n for r in range(rounds) for n in round_tenants(r).values()]
    missing = [t for t in names if submission_topic(t) not in runtime.topics]
    if missing:
        raise SystemExit(f"the validator reads no door of {missing}: is the tenants file set?")


async def run(
    settings: Settings, jobs: int, epochs: int, rounds: int, timeout_s: float, streaming: bool
) -> dict[str, Any]:
    """The validator, then ``rounds`` rounds of 3 x ``jobs`` jobs, each on two fresh trainers."""
    group = f"bench-fairshare-{uuid.uuid4().hex[:8]}"
    store = ObjectStore.from_settings(settings)
    validator = build_runtime(settings, store, group_id=f"{group}-validator")
    validator_reads_doors(validator, rounds)
    task = asyncio.create_task(validator.run())
    producer = make_producer(settings)
    await producer.start()
    try:
        await validator.wait_positioned(600)
        found = []
        for r in range(rounds):
            names = round_tenants(r)
            plan = [(t, names[t], tiny_job(t, n, epochs)) for n in range(jobs) for t in WEIGHTS]
            found.append(await one_round(settings, producer, group, plan, timeout_s, streaming))
    finally:
        await producer.stop()
        validator.stop()
        await asyncio.gather(task, return_exceptions=True)
    return overall(found, jobs, epochs, streaming)


@contextlib.asynccontextmanager
async def two_trainers(settings: Settings, group: str) -> AsyncIterator[None]:
    """Two trainers of one group, their workers warm before either joins it."""
    trainers = [TrainerService(settings, group_id=group) for _ in range(2)]
    await asyncio.gather(*(t.worker.start() for t in trainers))
    tasks = [asyncio.create_task(t.run()) for t in trainers]
    try:
        for t in trainers:
            await t.wait_positioned(600)
        yield
    finally:
        for t in trainers:
            t.stop()
        await asyncio.gather(*tasks, return_exceptions=True)


async def one_round(
    settings: Settings, producer: Any, group: str, plan: list[tuple[str, str, dict[str, Any]]],
    timeout_s: float, streaming: bool,
) -> dict[str, Any]:  # fmt: skip
    """Every job submitted at once, interleaved by tenant, on its tenant's own door; the
    trainers start before (streaming) or once every job is validated (a visible backlog)."""
    tenant_of = {j["job_id"]: t for t, _, j in plan}
    ours = lambda e: isinstance(e, ENDS) and e.job_id in tenant_of  # noqa: E731
    judged = lambda e: isinstance(e, JobValidated) and e.job_id in tenant_of  # noqa: E731
    async with contextlib.AsyncExitStack() as stack:
        if streaming:
            await stack.enter_async_context(two_trainers(settings, group))
        watched = (JOBS_LIFECYCLE, *VALIDATED_TOPICS)
        log = await stack.enter_async_context(EventTail(settings, watched))
        started = time.monotonic()
        for _, tenant, j in plan:
            body, key = json.dumps(j).encode(), j["job_id"].encode()
            await producer.send_and_wait(submission_topic(tenant), body, key=key)
        if not streaming:
            await log.until(judged, len(plan), timeout_s)
            await stack.enter_async_context(two_trainers(settings, group))
        await log.until(ours, len(plan), timeout_s)
        run_s = time.monotonic() - started
    ends = {e.job_id: e for e in log.events if ours(e)}
    found = summary(ends, tenant_of, run_s)
    spans = sorted(intervals(ends, tenant_of), key=lambda span: span[1])
    t0 = spans[0][1]
    found["spans"] = [[t, round(s - t0, 2), round(e - t0, 2)] for t, s, e in spans]
    return found


def intervals(ends: dict[str, Any], tenant_of: dict[str, str]) -> list[tuple[str, float, float]]:
    """(tenant, start, end) of every attempt, from its usage on the job's end event."""
    out = []
    for job_id, end in ends.items():
        at = end.at.timestamp()
        for used in end.usage:
            out.append((tenant_of[job_id], at - used.wall_s, at))
    return out


def shares(spans: list[tuple[str, float, float]]) -> tuple[dict[str, float], float, float]:
    """Each tenant's share of trainer-seconds while every tenant still had a job waiting."""
    first = min(s for _, s, _ in spans)
    last_start = {t: max(s for u, s, _ in spans if u == t) for t in WEIGHTS}
    until = min(last_start.values())
    held = dict.fromkeys(WEIGHTS, 0.0)
    for t, s, e in spans:
        held[t] += max(0.0, min(e, until) - max(s, first))
    total = sum(held.values()) or 1.0
    return {t: held[t] / total for t in WEIGHTS}, until - first, total


def summary(ends: dict[str, Any], tenant_of: dict[str, str], run_s: float) -> dict[str, Any]:
    """One round: each tenant's share of the backlogged window, and its totals."""
    share, window_s, busy_s = shares(intervals(ends, tenant_of))
    per = {}
    for t in WEIGHTS:
        mine = [e for j, e in ends.items() if tenant_of[j] == t]
        per[t] = {
            "share": round(share[t], 4),
            "completed": sum(isinstance(e, JobCompleted) for e in mine),
            "trainer_s": round(sum(u.wall_s for e in mine for u in e.usage), 2),
            "cpu_s": round(sum(u.cpu_s for e in mine for u in e.usage), 2),
        }
    return {"run_wall_s": round(run_s, 1), "backlogged_window_s": round(window_s, 1),
            "backlogged_trainer_s": round(busy_s, 1), "tenants": per}  # fmt: skip


def overall(found: list[dict[str, Any]], jobs: int, epochs: int, streaming: bool) -> dict[str, Any]:
    """The rounds, and each tenant's mean share against its weight's."""
    weight_sum = sum(WEIGHTS.values())
    per = {}
    for t, w in WEIGHTS.items():
        target = w / weight_sum
        mean = sum(r["tenants"][t]["share"] for r in found) / len(found)
        per[t] = {"weight": w, "target_share": round(target, 4), "mean_share": round(mean, 4),
                  "relative_error": round(abs(mean - target) / target, 4)}  # fmt: skip
    return {
        "jobs_per_tenant": jobs,
        "epochs": epochs,
        "trainers": 2,
        "trainers_start": "before the jobs (streaming)" if streaming else "after every verdict",
        "tenants": per,
        "goal_relative_error": GOAL_RELATIVE,
        "goal_met": all(p["relative_error"] <= GOAL_RELATIVE for p in per.values()),
        "rounds": found,
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--jobs", type=int, default=20, help="jobs per tenant (at most 50)")
    parser.add_argument("--epochs", type=int, default=3)
    parser.add_argument("--rounds", type=int, default=3, help="on the same trainers (at most 10)")
    parser.add_argument("--timeout", type=float, default=600.0, help="seconds a round may take")
    parser.add_argument("--partitions", type=int, default=3, help="of each topic (default 3)")
    parser.add_argument(
        "--backlog-first", action="store_true",
        help="start the trainers once every job is validated (default: before the jobs)",
    )  # fmt: skip
    parser.add_argument("--out", type=Path, help="also write the result here (JSON)")
    args = parser.parse_args()
    # Each trainer picks among the heads of its partitions: their number bounds the choice.
    os.environ["SPARKTRAINER_TOPIC_PARTITIONS"] = str(max(1, min(64, args.partitions)))
    jobs = max(1, min(50, args.jobs))
    with tempfile.TemporaryDirectory(prefix="fairshare-") as home:
        with bench_stack("fairshare-stack-") as settings:
            mine = settings.model_copy(
                update={
                    "tenants_file": tenants_file(Path(home), max(1, min(10, args.rounds))),
                    "schedule_aging_s": 3600.0,
                }
            )
            rounds = max(1, min(10, args.rounds))
            load_before = os.getloadavg()
            streaming = not args.backlog_first
            result = asyncio.run(run(mine, jobs, args.epochs, rounds, args.timeout, streaming))
            result.update(partitions=mine.topic_partitions, cpus=os.cpu_count(),
                          load_before=load_before, load_after=os.getloadavg())  # fmt: skip
    if args.out:
        args.out.write_text(json.dumps(result, indent=2) + "\n")
    emit(result)


if __name__ == "__main__":
    main()
