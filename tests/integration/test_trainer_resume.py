"""A trainer process killed mid-job: the next owner resumes from the last checkpoint.

Real trainer processes (``python -m consumers.trainer``) on the real broker and S3; the first
is SIGKILLed (with its warm worker) after a checkpoint, a second takes the partition over.
"""

from __future__ import annotations

import os
import uuid

import pytest

from sparktrainer.bus.kafka import send
from sparktrainer.contracts.envelope import encode
from sparktrainer.contracts.events import (
    CheckpointSaved,
    JobCompleted,
    JobStarted,
    JobValidated,
    ModelRegistered,
)
from sparktrainer.contracts.topics import (
    JOBS_CONTROL,
    JOBS_LIFECYCLE,
    MODELS_REGISTERED,
    VALIDATED_TOPICS,
)
from sparktrainer.validation.checks import validate_job
from tests.integration.procs import kill_group, start_consumer
from tests.integration.tap import Tap, producer_for, start_group_at_end

pytestmark = [pytest.mark.integration, pytest.mark.slow]
GROUP = "resume-trainer"


def validated_job(epochs: int) -> JobValidated:
    job = {
        "type": "train",
        "framework": "pytorch",
        "name": "resume me",
        "config": {
            "architecture": "custom",
            "input_size": 64,
            "output_size": 10,
            "hidden_layers": [256, 256],
            "epochs": epochs,
            "batch_size": 16,
            "data": {"source": "digits"},
        },
    }
    result = validate_job(job, None)
    assert result.valid, result.errors
    return JobValidated(
        job_id=f"resume-{uuid.uuid4().hex[:8]}",
        name="resume me",
        type="train",
        framework="pytorch",
        config_kind=result.config.kind,
        config=result.config,
    )


async def test_killed_trainer_job_resumes_from_its_checkpoint(settings) -> None:
    env = {**os.environ, "SPARKTRAINER_LOG_LEVEL": "WARNING"}
    await start_group_at_end(settings, GROUP, *VALIDATED_TOPICS)
    await start_group_at_end(settings, f"{GROUP}-control", JOBS_CONTROL)
    job = validated_job(epochs=6)
    first = await start_consumer("consumers.trainer", GROUP, env)
    producer = producer_for(settings)
    await producer.start()
    try:
        async with Tap(settings, JOBS_LIFECYCLE, MODELS_REGISTERED) as tap:
            await send(producer, encode(job, "test"))
            mine = lambda cls: lambda e: isinstance(e, cls) and e.job_id == job.job_id  # noqa: E731
            await tap.wait_for(lambda e: mine(CheckpointSaved)(e) and e.epoch >= 2, 1, 300)
            kill_group(first)
            second = await start_consumer("consumers.trainer", GROUP, env)
            try:
                [done] = await tap.wait_for(mine(JobCompleted), 1, 300)
            finally:
                second.terminate()
                second.wait(30)
            starts = [e for e in tap.events if mine(JobStarted)(e)]
            registered = [e for e in tap.events if mine(ModelRegistered)(e)]
    finally:
        await producer.stop()
        if first.poll() is None:
            kill_group(first)
    assert [s.attempt for s in starts] == [1, 2]
    assert starts[0].resumed_from_epoch is None
    assert starts[1].resumed_from_epoch is not None and starts[1].resumed_from_epoch >= 2
    assert len(registered) == 1 and done.model_id == job.job_id
    assert second.returncode == 0  # SIGTERM is a graceful stop
