"""Faults of trainers: killed mid-job (three times over), jobs past their time limit or longer
than the consumer's max poll interval.

Trainers are processes where they are killed; every job ends exactly once in effect (one terminal
state, one distinct terminal event, at most one model), resumed from its newest checkpoint.
"""

from __future__ import annotations

import asyncio
import os
import random
from pathlib import Path

import pytest

from sparktrainer.bus.kafka import send
from sparktrainer.contracts.envelope import encode
from sparktrainer.contracts.events import (
    CancelRequested,
    CheckpointSaved,
    JobCancelled,
    JobCompleted,
    JobFailed,
    JobProgress,
    JobStarted,
    ModelRegistered,
)
from sparktrainer.contracts.failures import FailureReason
from sparktrainer.contracts.topics import (
    JOBS_CONTROL,
    JOBS_LIFECYCLE,
    JOBS_SUBMITTED,
    MODELS_REGISTERED,
    VALIDATED_TOPICS,
)
from sparktrainer.services.trainer import TrainerService
from sparktrainer.settings import Limits, Settings
from sparktrainer.storage.s3 import ObjectStore
from tests.integration.faults_kit import (
    STORY_TOPICS,
    Services,
    assert_answered_once,
    kinds,
    log,
    log_ends,
    mlp_job,
    read_log,
    start_trainer_process,
    stories,
    until,
    validated,
)
from tests.integration.logs_kit import log_through_cli_and_api
from tests.integration.procs import kill_group
from tests.integration.tap import Tap, produce, producer_for, start_group_at_end

pytestmark = [pytest.mark.integration]


# -- trainers killed ---------------------------------------------------------------------------


@pytest.mark.slow
async def test_trainer_killed_three_times_ends_once_from_its_checkpoints(
    settings: Settings, store: ObjectStore, unique
) -> None:
    """SIGKILL the trainer's process group at random points of a job, three times over."""
    group = unique("killed-trainer")
    await start_group_at_end(settings, group, *VALIDATED_TOPICS)
    await start_group_at_end(settings, f"{group}-control", JOBS_CONTROL)
    # Three kills and a fourth start: each start is counted, so the limit must allow four.
    env = {**os.environ, "SPARKTRAINER_LOG_LEVEL": "WARNING", "SPARKTRAINER_JOB_MAX_ATTEMPTS": "4"}
    # ~0.18 s an epoch on an idle core: each attempt is killed 0-3 epochs (plus up to 0.4 s)
    # after it starts, so three kills use at most ~16 of the 20 epochs on a machine this fast.
    job = validated(
        mlp_job(
            "killed",
            epochs=20,
            hidden_layers=[512, 512],
            batch_size=16,
            data={"source": "synthetic", "num_samples": 2000},
        )
    )
    seed = int(os.environ.get("SPARKTRAINER_TEST_KILL_SEED") or random.randrange(1 << 30))
    rng = random.Random(seed)
    log("kill points seeded with", seed, "(SPARKTRAINER_TEST_KILL_SEED repeats a run)")
    mine = lambda cls: lambda e: isinstance(e, cls) and e.job_id == job.job_id  # noqa: E731
    producer = producer_for(settings)
    await producer.start()
    trainer = await start_trainer_process(env, group)
    seen_at_kill: list[int] = []
    try:
        async with Tap(settings, JOBS_LIFECYCLE, MODELS_REGISTERED) as tap:
            await send(producer, encode(job, "test"))
            for attempt in (1, 2, 3):
                # A random point: 0-3 epochs into this attempt, plus a random part of the next.
                [start] = await tap.wait_for(
                    lambda e, n=attempt: mine(JobStarted)(e) and e.attempt == n, 1, 180
                )
                target = (start.resumed_from_epoch or 0) + rng.randint(0, 3)
                if target > (start.resumed_from_epoch or 0):
                    await tap.wait_for(
                        lambda e, t=target: mine(CheckpointSaved)(e) and e.epoch >= t, 1, 180
                    )
                await asyncio.sleep(rng.uniform(0.0, 0.4))
                saved = [e.epoch for e in tap.events if mine(CheckpointSaved)(e)]
                assert not [e for e in tap.events if mine(JobCompleted)(e)], "ended too soon"
                kill_group(trainer)
                seen_at_kill.append(max(saved, default=0))
                log(f"killed attempt {attempt} after the checkpoint of epoch {seen_at_kill[-1]}")
                trainer = await start_trainer_process(env, group)
            [done] = await tap.wait_for(mine(JobCompleted), 1, 300)
            await asyncio.sleep(0.5)  # anything sent twice would show by now
            events = [e for e in tap.events if getattr(e, "job_id", None) == job.job_id]
    finally:
        await producer.stop()
        trainer.terminate()
        await asyncio.to_thread(trainer.wait, 30)
        if trainer.poll() is None:
            kill_group(trainer)
    starts = sorted({e.attempt: e for e in events if isinstance(e, JobStarted)}.values(),
                    key=lambda e: e.attempt)  # fmt: skip
    assert [s.attempt for s in starts] == [1, 2, 3, 4], starts
    for start, seen in zip(starts[1:], seen_at_kill, strict=True):
        # Each new owner starts from the newest checkpoint there was (never an older one).
        assert (start.resumed_from_epoch or 0) >= seen, (start, seen_at_kill)
    assert len({e.model_id for e in events if isinstance(e, ModelRegistered)}) == 1
    assert len([e for e in events if isinstance(e, JobCompleted | JobFailed)]) == 1
    assert done.model_id == job.job_id
    meta = store.get_json(f"models/{job.job_id}/metadata.json")
    # The resumed runs add up to one run: every epoch once in the model's history.
    assert [h["epoch"] for h in meta["history"]] == [float(e) for e in range(1, 21)]
    assert trainer.returncode == 0  # the last one stopped gracefully (SIGTERM)


# -- slow and stuck jobs -----------------------------------------------------------------------


@pytest.mark.slow
async def test_jobs_past_their_time_limit_are_stopped_and_failed(
    settings: Settings, tmp_path: Path, capsysbinary: pytest.CaptureFixture[bytes]
) -> None:
    """config.max_runtime_s, and the deployment's cap (SPARKTRAINER_MAX_JOB_RUNTIME_S)."""
    jobs_settings = settings.model_copy(update={"limits": Limits(job_runtime_s=4.0)})
    mark = await log_ends(settings, STORY_TOPICS)
    async with Services(settings, tmp_path / "reg.sqlite3", trainer_settings=jobs_settings) as svc:
        assert svc.producer is not None
        own = mlp_job("own-limit", epochs=900, max_runtime_s=1.5)
        capped = mlp_job("capped", epochs=900)  # asks for no limit: the deployment's applies
        for job in (own, capped):
            await produce(svc.producer, JOBS_SUBMITTED, job)
        statuses = await svc.wait_terminal([own["job_id"], capped["job_id"]], timeout_s=90)
        assert set(statuses.values()) == {"failed"}, statuses
        assert "time limit of 1.5 s" in svc.job_row(own["job_id"])["reason"]
        assert "time limit of 4 s" in svc.job_row(capped["job_id"])["reason"]
    told = stories(await read_log(settings, mark))
    for job in (own, capped):
        end = assert_answered_once(told[job["job_id"]], job["job_id"])
        assert isinstance(end, JobFailed) and end.error_type == "JobTimeout", end
        assert not end.retriable and end.cause is FailureReason.TIMEOUT
        [start] = told[job["job_id"]].distinct(JobStarted)  # stopped, not retried
        # Stopped by its limit, not by running out of epochs: the trainer's own clock and steps.
        epochs = [e.epoch for e in told[job["job_id"]].distinct(JobProgress)]
        assert max(epochs, default=0) < 900, epochs
        assert (end.at - start.at).total_seconds() < 30, (start.at, end.at)
    text = await log_through_cli_and_api(settings, own["job_id"], 1, capsysbinary, tmp_path)
    assert b"time limit of 1.5 s" in text, text[-3000:]


@pytest.mark.slow
async def test_a_job_longer_than_max_poll_interval_keeps_its_trainer_in_the_group(
    settings: Settings, tmp_path: Path
) -> None:
    """max_poll_interval 2 s, a 7 s job, two trainers in the group: no rebalance, no takeover."""
    jobs_settings = settings.model_copy(update={"kafka_max_poll_interval_ms": 2000})
    mark = await log_ends(settings, STORY_TOPICS)
    async with Services(settings, tmp_path / "reg.sqlite3", trainer_settings=jobs_settings) as svc:
        assert svc.producer is not None and svc.trainer is not None
        first = svc.trainer
        second = TrainerService(jobs_settings, group_id=first.jobs.group_id,
                         control_group_id=first.control.group_id)  # fmt: skip
        second_task = asyncio.create_task(second.run())
        try:
            await asyncio.wait_for(second.ready.wait(), 300)
            await asyncio.sleep(2.0)  # the join settles: both hold partitions
            assert first.jobs.assigned.is_set() and second.jobs.assigned.is_set()
            before = (first.jobs.stats.rebalances, second.jobs.stats.rebalances)
            job = mlp_job("long", epochs=900)
            await produce(svc.producer, JOBS_SUBMITTED, job)
            await until(lambda: (svc.job_row(job["job_id"]) or {}).get("status") == "running")
            await asyncio.sleep(7.0)  # > 3 x max_poll_interval
            after = (first.jobs.stats.rebalances, second.jobs.stats.rebalances)
            await send(
                svc.producer,
                encode(CancelRequested(job_id=job["job_id"], requested_by="test"), "test"),
            )
            statuses = await svc.wait_terminal([job["job_id"]], timeout_s=60)
        finally:
            second.stop()
            await asyncio.gather(second_task, return_exceptions=True)
    assert after == before, f"rebalances during the job: {before} -> {after}"
    assert statuses == {job["job_id"]: "cancelled"}
    story = stories(await read_log(settings, mark))[job["job_id"]]
    assert isinstance(assert_answered_once(story, job["job_id"]), JobCancelled)
    assert len(story.distinct(JobStarted)) == 1, kinds(story)  # nobody took it over
    assert story.count(JobProgress) >= 5  # it trained all along
