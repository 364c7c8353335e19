"""Priorities, aging and resource classes on the real broker: trainers take what they serve,
highest (aged) priority first, and a job no trainer serves waits visibly until one starts."""

from __future__ import annotations

import asyncio
import functools

import pytest

from sparktrainer.contracts.events import JobCompleted, JobFailed, JobProgress, JobStarted
from sparktrainer.contracts.topics import (
    JOBS_LIFECYCLE,
    JOBS_SUBMITTED,
    TRAINERS,
    validated_topic,
)
from sparktrainer.registry.queue import queue_view
from tests.integration.schedule_kit import (
    digits_job,
    door_and_read_model,
    fresh_group,
    start_trainer,
    started_order,
    stop_trainer,
)
from tests.integration.tap import Tap, produce, producer_for

pytestmark = pytest.mark.integration
ENDED = (JobCompleted, JobFailed)


@pytest.fixture(scope="module")
async def pools(stack, tmp_path_factory):
    """A gpu trainer (no aging to speak of) and a gpu-large one aging every 3 s."""
    async with door_and_read_model(stack, tmp_path_factory.mktemp("q") / "r.db") as projector:
        gpu = await start_trainer(stack, "gpu")
        large = await start_trainer(stack, "gpu-large", schedule_aging_s=3.0)
        producer = producer_for(stack)
        await producer.start()
        try:
            yield producer, projector, gpu[0], large[0]
        finally:
            await producer.stop()
            await asyncio.gather(stop_trainer(*gpu), stop_trainer(*large))


def ended(job_ids: set[str]):
    return lambda e: isinstance(e, ENDED) and e.job_id in job_ids


def started(job_id: str):
    return lambda e: isinstance(e, JobStarted) and e.job_id == job_id


async def test_a_high_priority_job_behind_low_ones_starts_next(stack, pools) -> None:
    producer, _, _, _ = pools
    blocker = digits_job("blocker", epochs=20)  # outlasts the five submissions below
    lows = [digits_job("low", priority="low") for _ in range(4)]
    high = digits_job("high", priority="high")
    ids = {j["job_id"] for j in (blocker, *lows, high)}
    async with Tap(stack, JOBS_LIFECYCLE) as tap:
        await produce(producer, JOBS_SUBMITTED, blocker)
        await tap.wait_for(started(blocker["job_id"]), 1, 120)
        for job in lows:
            await produce(producer, JOBS_SUBMITTED, job)
        await produce(producer, validated_topic("gpu", "high"), b"\x00 not an event")  # survived
        await produce(producer, JOBS_SUBMITTED, high)
        await tap.wait_for(ended(ids), len(ids), 240)
        order = started_order(tap.events, ids)
    assert order[:2] == [blocker["job_id"], high["job_id"]], order
    assert set(order[2:]) == {j["job_id"] for j in lows}
    assert all(isinstance(e, JobCompleted) for e in tap.events if ended(ids)(e))


async def test_a_low_job_still_runs_under_a_steady_stream_of_high_ones(stack, pools) -> None:
    """Highs arrive faster than the trainer takes them, until well after the low one started."""
    producer, _, _, _ = pools
    blocker = digits_job("blocker", memory_gib=40)
    low = digits_job("low", priority="low", memory_gib=40)
    highs: list[dict] = []
    async with Tap(stack, JOBS_LIFECYCLE) as tap:
        await produce(producer, JOBS_SUBMITTED, blocker)
        await tap.wait_for(started(blocker["job_id"]), 1, 120)
        await produce(producer, JOBS_SUBMITTED, low)
        after_low_started = 0
        while after_low_started < 3 and len(highs) < 60:  # a steady stream, bounded
            highs.append(digits_job(f"high{len(highs)}", priority="high", memory_gib=40))
            await produce(producer, JOBS_SUBMITTED, highs[-1])
            await asyncio.sleep(0.3)
            after_low_started += any(started(low["job_id"])(e) for e in tap.events)
        ids = {j["job_id"] for j in (blocker, low, *highs)}
        await tap.wait_for(ended(ids), len(ids), 300)
        order = started_order(tap.events, ids)
    assert after_low_started == 3, f"the low job never ran under {len(highs)} high ones"
    position = order.index(low["job_id"])
    assert position > 1, order  # fresh, the low job yields to the high ones (6 s to the top)...
    waiting_then = [j["job_id"] for j in highs[: len(highs) - 3]]
    assert set(order[position + 1 :]) & set(waiting_then), order  # ...it aged past waiting ones


async def test_a_job_no_trainer_serves_waits_visibly_and_runs_when_one_starts(stack, pools) -> None:
    producer, projector, _, _ = pools
    job = digits_job("wide", gpus=2)
    async with Tap(stack, JOBS_LIFECYCLE, TRAINERS) as tap:
        trainer = None
        group = await fresh_group(stack, "multi-gpu")  # before the job: it must see the job
        try:
            await produce(producer, JOBS_SUBMITTED, job)
            view = await _until_waiting(projector, job["job_id"], stack.schedule_aging_s)
            multi = next(c for c in view["classes"] if c["class"] == "multi-gpu")
            assert multi["waiting"][0]["job_id"] == job["job_id"]
            assert "no live trainer serves class 'multi-gpu'" in multi["reason"]
            assert "gpu-large" in multi["reason"]  # the live trainers it does know of
            trainer = await start_trainer(stack, "multi-gpu", group)
            [end] = await tap.wait_for(ended({job["job_id"]}), 1, 240)
            assert isinstance(end, JobCompleted), end
        finally:
            if trainer is not None:
                await stop_trainer(*trainer)


async def _until_waiting(projector, job_id: str, aging_s: float, timeout_s: float = 60) -> dict:
    for _ in range(int(timeout_s / 0.2)):
        view = projector_view(projector, aging_s)
        if any(w["job_id"] == job_id for c in view["classes"] for w in c["waiting"]):
            return view
        await asyncio.sleep(0.2)
    raise AssertionError(f"{job_id} never showed as waiting")


def projector_view(projector, aging_s: float) -> dict:
    return queue_view(projector.conn, aging_s)


async def test_two_trainers_of_different_classes_each_take_only_their_own(stack, pools) -> None:
    producer, projector, gpu, large = pools
    small = [digits_job("g") for _ in range(3)]
    big = [digits_job("G", memory_gib=24) for _ in range(3)]
    ids = {j["job_id"] for j in (*small, *big)}
    async with Tap(stack, JOBS_LIFECYCLE) as tap:
        for job in (*small, *big):
            await produce(producer, JOBS_SUBMITTED, job)
        await tap.wait_for(ended(ids), len(ids), 240)
        starts = {e.job_id: e.worker for e in tap.events if isinstance(e, JobStarted)}
    assert {starts[j["job_id"]] for j in small} == {_worker(gpu)}
    assert {starts[j["job_id"]] for j in big} == {_worker(large)}
    view = projector_view(projector, stack.schedule_aging_s)
    serving = {c["class"]: set(c["trainers"]) for c in view["classes"]}
    assert {gpu.presence_id, large.presence_id} <= serving["gpu"] | serving["gpu-large"]
    assert gpu.presence_id in serving["gpu"] and gpu.presence_id not in serving["gpu-large"]
    assert large.presence_id in serving["gpu-large"] and large.presence_id not in serving["gpu"]


async def test_a_high_job_preempts_the_low_one_which_resumes_at_its_step_once(stack, pools) -> None:
    """Issue 18 item 2 on the only trainer of the class: the high job waits the preemption delay
    (0.5 s here), the low one checkpoints at its step and gives way, the high job runs, the low
    one resumes there and ends; a second high job, submitted once it resumed, finds it at its
    bound (SPARKTRAINER_PREEMPT_MAX_PER_JOB=1) while it waits past the delay, and runs after
    it: one preemption in all. The bound is the job's, not the trainer's: once the low job gave
    way, the trainer's memory of it is replaced by a fresh one (what a restarted or another
    trainer has), which learns the first preemption from the job's attempt record in S3."""
    from sparktrainer.contracts.events import JobPreempted
    from sparktrainer.contracts.preemption import PreemptionRule
    from sparktrainer.scheduling.preempting import Preemptions
    from sparktrainer.storage.outcomes import gave_way_times

    producer, _, gpu, _ = pools
    low = digits_job("pre-low", priority="low", epochs=40)
    high, later = digits_job("pre-high", priority="high"), digits_job("pre-later", priority="high")
    ids = {j["job_id"] for j in (low, high, later)}
    short = stack.model_copy(update={"preempt_after_s": 0.5, "preempt_max_per_job": 1})

    def memory() -> Preemptions:
        stored = functools.partial(gave_way_times, gpu.store)
        return Preemptions(PreemptionRule.from_settings(short), gpu.jobs.waiting, stored)

    usual, first = gpu.preemptions, memory()
    gpu.preemptions = first
    try:
        async with Tap(stack, JOBS_LIFECYCLE) as tap:
            await produce(producer, JOBS_SUBMITTED, low)
            # In its loop (its first report) before the high job comes: the stop lands on a step.
            await tap.wait_for(lambda e: isinstance(e, JobProgress) and e.job_id == low["job_id"])
            await produce(producer, JOBS_SUBMITTED, high)
            await tap.wait_for(lambda e: isinstance(e, JobPreempted) and e.job_id == low["job_id"])
            gpu.preemptions = fresh = memory()  # knows nothing of the low job's preemption
            await tap.wait_for(lambda e: started(low["job_id"])(e) and e.attempt == 2, 1, 120)
            await produce(producer, JOBS_SUBMITTED, later)  # the low job is at its bound now
            await tap.wait_for(ended({later["job_id"]}), 1, 240)  # the last to end
    finally:
        gpu.preemptions = usual
    mine = sorted((e for e in tap.events if getattr(e, "job_id", None) in ids), key=lambda e: e.at)
    # One line per event: a resent copy (there is no idempotent producer) counts once.
    kinds = JobStarted | JobPreempted | JobCompleted
    starts_and_ends = (
        (type(e).__name__, e.job_id, e.attempt) for e in mine if isinstance(e, kinds)
    )
    story = list(dict.fromkeys(starts_and_ends))
    assert story == [
        ("JobStarted", low["job_id"], 1), ("JobPreempted", low["job_id"], 1),
        ("JobStarted", high["job_id"], 1), ("JobCompleted", high["job_id"], 1),
        ("JobStarted", low["job_id"], 2), ("JobCompleted", low["job_id"], 2),
        ("JobStarted", later["job_id"], 1), ("JobCompleted", later["job_id"], 1),
    ], story  # fmt: skip
    preempted = next(e for e in mine if isinstance(e, JobPreempted))
    resumed = next(e for e in mine if isinstance(e, JobStarted) and e.attempt == 2)
    assert preempted.step is not None and resumed.resumed_from_step == preempted.step
    assert "gave way to a high-priority job" in preempted.reason
    assert first.preempted == 1 and fresh.preempted == 0
    # The later job did ask for the slot (waited past the delay): only the recalled bound held.
    assert fresh.held >= 1 and len(fresh.history[low["job_id"]]) == 1, fresh


def _worker(trainer) -> str:
    import socket

    return f"{socket.gethostname()}/{trainer.worker.pid}"
