"""The validator and the sweep controller wired on the in-memory broker with two teams: each
door stamps its tenant, a forged trial is refused at the door, the controller's trials come on
its own topic with the sweep's tenant, and a sweep whose trial ids were squatted ends, failed,
without a hang (issue 17 items 1-3). S3 is a dict here: only the id claims need it."""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator, Callable
from pathlib import Path
from typing import Any

import pytest

from sparktrainer.bus.kafka import ensure_topics
from sparktrainer.contracts import topics as t
from sparktrainer.contracts.envelope import decode
from sparktrainer.contracts.events import JobRejected, JobValidated
from sparktrainer.contracts.schedule_events import SweepEnded, TrialRejected, TrialSubmission
from sparktrainer.services.validator import build_runtime, validator_topics
from sparktrainer.settings import Settings
from sparktrainer.sweeps.controller import SweepController
from tests.conftest import KafkaHelper
from tests.tenants_kit import DictStore, TwoTeams, write_two_teams
from tests.unit.test_tenant_doors import JOB

pytestmark = pytest.mark.memory
SWEEP = {
    "job_id": "sw",
    "type": "sweep",
    "framework": "pytorch",
    "config": {"base": JOB, "space": {"learning_rate": {"type": "choice", "values": [0.1, 0.01]}},
               "max_trials": 2, "max_concurrent": 1},
}  # fmt: skip


@contextlib.asynccontextmanager
async def running(settings: Settings, unique: Callable[[str], str]) -> AsyncIterator[None]:
    """The validator and the sweep controller on one dict store, until the block ends."""
    await ensure_topics(settings, validator_topics(settings))
    store = DictStore()
    validator = build_runtime(settings, store, group_id=unique("validator"))
    controller = SweepController(settings, store=store)
    tasks = [asyncio.create_task(validator.run()), asyncio.create_task(controller.run())]
    try:
        await validator.wait_positioned(10)
        await controller.wait_positioned(10)
        yield
    finally:
        validator.stop()
        controller.stop()
        await asyncio.wait_for(asyncio.gather(*tasks), 20)


async def events(kafka: KafkaHelper, topic: str, count: int, want: Any) -> list[Any]:
    """The first ``count`` events of type ``want`` on ``topic``."""

    def match(r: Any) -> bool:
        return isinstance(decode(r.value, r.headers), want)

    found = await kafka.consume(topic, count, match=match, timeout_s=20)
    return [decode(r.value, r.headers) for r in found]


async def test_doors_stamp_tenants_and_a_squatted_sweep_ends(
    memory_settings: Settings, tmp_path: Path, unique: Callable[[str], str]
) -> None:
    teams: TwoTeams = write_two_teams(tmp_path)
    settings = memory_settings.model_copy(update={"tenants_file": teams.path})
    kafka = KafkaHelper(settings, unique)
    async with running(settings, unique):
        # vision squats both trial ids of speech's sweep before it exists, and forges lineage
        for n in (1, 2):
            await kafka.produce(teams.door("vision"), {**JOB, "job_id": f"sw-t00{n}"})
        await kafka.produce(teams.door("vision"), {**JOB, "sweep_id": "sw", "trial": 3})
        squatters = await events(kafka, t.JOBS_VALIDATED, 2, JobValidated)
        assert {(j.job_id, j.tenant) for j in squatters} == {("sw-t001", "vision"),
                                                            ("sw-t002", "vision")}  # fmt: skip
        [forged] = await events(kafka, t.JOBS_REJECTED, 1, JobRejected)
        assert forged.tenant == "vision" and "only the sweep controller" in forged.errors[0]
        await kafka.produce(teams.door("speech"), SWEEP)
        [ended] = await events(kafka, t.SWEEPS, 1, SweepEnded)
        assert ended.status == "failed" and "2 rejected" in (ended.reason or ""), ended
        rejected = await events(kafka, t.SWEEPS, 2, TrialRejected)
        assert [(r.trial, r.job_id) for r in rejected] == [(1, "sw-t001"), (2, "sw-t002")]
        trials = await events(kafka, t.SWEEP_TRIALS, 2, TrialSubmission)
        assert {(s.tenant, s.trial) for s in trials} == {("speech", 1), ("speech", 2)}
    await kafka.close()
