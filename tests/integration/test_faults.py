"""Faults of the broker: tansu crashed mid-stream, duplicate records, a whole topic replayed.

The object store's faults are in test_faults_store.py, the trainers' in test_faults_trainer.py.

Every test runs the real services (validator, trainer, projector; trainers as processes where
they are killed) against real servers. A test that stops or kills a server breaks servers
of its own (a private stack, or a second SeaweedFS as the jobs' object store), never the
session's. Each checks the promise that matters to a user: every job ends exactly once in
effect (one terminal state in the read model, one distinct terminal event, at most one
model), nothing half-written is listed, and the services carry on without a restart.
"""

from __future__ import annotations

import asyncio
import json
import os
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from sparktrainer.bus.kafka import send
from sparktrainer.contracts.envelope import encode
from sparktrainer.contracts.events import (
    JobCompleted,
    JobStarted,
    JobSubmitted,
    derived_job_id,
)
from sparktrainer.contracts.topics import (
    JOBS_SUBMITTED,
)
from sparktrainer.embedded import EmbeddedStack, embedded_available
from sparktrainer.registry import runner as projector_runner
from sparktrainer.registry.jobs import list_jobs
from sparktrainer.settings import Settings
from tests.integration.faults_kit import (
    STORY_TOPICS,
    Services,
    assert_answered_once,
    crash,
    kinds,
    log,
    log_ends,
    mlp_job,
    private_stack,
    read_log,
    stories,
    until,
)
from tests.integration.tap import produce

pytestmark = [pytest.mark.integration]


@pytest.fixture(scope="module")
def own_stack(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[EmbeddedStack, Settings]]:
    """A private stack for the tests that crash the broker or replay whole topics."""
    if not embedded_available():
        pytest.skip("needs sparktrainer[embedded] (private servers to break)")
    with private_stack(tmp_path_factory.mktemp("faults-stack")) as pair:
        yield pair


# -- the broker --------------------------------------------------------------------------------


@pytest.mark.slow
async def test_broker_crash_mid_stream_every_job_answered_once(
    own_stack: tuple[EmbeddedStack, Settings], tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """tansu is SIGKILLed while jobs are submitted and trained, and started again 4 s later."""
    stack, settings = own_stack
    # The projector re-reads the partition list every 30 s; make it do so during the outage.
    monkeypatch.setattr(projector_runner, "REASSIGN_EVERY_S", 0.5)
    mark = await log_ends(settings, STORY_TOPICS)
    started = time.monotonic()
    async with Services(settings, tmp_path / "registry.sqlite3") as svc:
        assert svc.producer is not None and svc.trainer is not None
        await svc.caught_up()
        before = svc.models_total()  # the module's earlier tests registered theirs
        ids: list[str] = []

        async def submit(count: int, every_s: float) -> None:
            for _ in range(count):
                job = mlp_job("restart", epochs=4)
                ids.append(job["job_id"])
                await produce(svc.producer, JOBS_SUBMITTED, job)  # waits out the outage
                await asyncio.sleep(every_s)

        stream = asyncio.create_task(submit(10, 0.6))
        await until(
            lambda: (
                len(ids) >= 3
                and any((svc.job_row(j) or {}).get("status") == "running" for j in ids)
            )
        )
        log("crashing tansu with", len(ids), "jobs submitted")
        crash(stack, "tansu")
        await asyncio.sleep(4)
        await asyncio.to_thread(stack.start, with_services=False)
        log("tansu is back")
        await stream
        statuses = await svc.wait_terminal(ids, timeout_s=180)
        assert set(statuses.values()) == {"completed"}, statuses
        assert all(svc.alive().values()), svc.alive()  # nobody had to be restarted
        await svc.caught_up()
        assert svc.models_total() == before + len(ids)
        for job_id in ids:
            model = svc.model_row(job_id)
            assert model is not None and model["job_id"] == job_id
    log(f"{len(ids)} jobs through a broker crash in {time.monotonic() - started:.1f} s")
    told = stories(await read_log(settings, mark))
    for job_id in ids:
        end = assert_answered_once(told[job_id], job_id)
        assert isinstance(end, JobCompleted), kinds(told[job_id])


# -- duplicates --------------------------------------------------------------------------------


@pytest.mark.slow
async def test_duplicates_and_a_whole_topic_replay_change_nothing(
    own_stack: tuple[EmbeddedStack, Settings], tmp_path: Path
) -> None:
    """The same submission twice, a producer retry, then `sparktrainer replay` of the topic."""
    _, settings = own_stack
    mark = await log_ends(settings, STORY_TOPICS)
    async with Services(settings, tmp_path / "registry.sqlite3") as svc:
        assert svc.producer is not None and svc.trainer is not None
        twice = mlp_job("twice", epochs=2)
        await produce(svc.producer, JOBS_SUBMITTED, twice)
        await produce(svc.producer, JOBS_SUBMITTED, twice)  # delivered twice (two records)
        retried = encode(JobSubmitted.model_validate(mlp_job("retried", epochs=2)), "test")
        await send(svc.producer, retried)
        await send(svc.producer, retried)  # a producer retry: the identical record again
        bare = mlp_job("bare", epochs=2)
        del bare["job_id"]  # as typed into a Kafka UI: the id is derived from where it lands
        partition, offset = await produce(svc.producer, JOBS_SUBMITTED, bare)
        ids = [
            twice["job_id"],
            retried.key.decode(),
            derived_job_id(JOBS_SUBMITTED, partition, offset),
        ]
        statuses = await svc.wait_terminal(ids, timeout_s=120)
        assert set(statuses.values()) == {"completed"}, statuses
        await svc.caught_up()
        models, jobs = svc.models_total(), _jobs_total(svc)

        done_before = svc.trainer.jobs.stats.records_done
        replay = await asyncio.to_thread(
            subprocess.run,
            [sys.executable, "-m", "sparktrainer.replay", JOBS_SUBMITTED, "--json"],
            env={**os.environ, "SPARKTRAINER_KAFKA_BOOTSTRAP_SERVERS": settings.kafka_ready()},
            capture_output=True,
            text=True,
            timeout=120,
        )
        assert replay.returncode == 0, replay.stderr[-2000:]
        summary = json.loads(replay.stdout)
        replayed = int(summary.get("sent", 0))
        assert replayed >= 5, summary  # this test's five records, and earlier tests' too
        # Every replayed record is validated again and answered again by the trainer.
        deadline = time.monotonic() + 120
        while svc.trainer.jobs.stats.records_done < done_before + replayed:
            assert time.monotonic() < deadline, "the replay was not worked through"
            await asyncio.sleep(0.3)
        await svc.caught_up()
        assert svc.models_total() == models
        assert _jobs_total(svc) == jobs  # no job appeared under a new id
        assert all(svc.alive().values())
    told = stories(await read_log(settings, mark))
    for job_id in ids:
        story = told[job_id]
        end = assert_answered_once(story, job_id)
        assert isinstance(end, JobCompleted), kinds(story)
        assert len(story.distinct(JobStarted)) == 1, kinds(story)  # trained once, answered often
    assert set(told) - {None} == set(ids) | _earlier(told, ids), sorted(told)


def _jobs_total(svc: Services) -> int:
    assert svc.projector is not None
    return list_jobs(svc.projector.conn).total


def _earlier(told: dict, ids: list[str]) -> set[str]:
    """Jobs of earlier tests on this stack that the replay re-drove (answered from S3)."""
    return {j for j, story in told.items() if j not in ids and not story.distinct(JobStarted)}
