"""A trainer stopped with SIGTERM mid-epoch: its job checkpoints at the step it reached and the
next trainer resumes from exactly that step (issue 18 item 1).

Real trainer processes (``python -m consumers.trainer``) on the real broker and S3. The steps
come from the events (JobProgress, JobPreempted, JobStarted), never from a clock.
"""

from __future__ import annotations

import os
import uuid

import pytest

from sparktrainer.bus.kafka import send
from sparktrainer.contracts.envelope import encode
from sparktrainer.contracts.events import (
    JobCompleted,
    JobFailed,
    JobPreempted,
    JobProgress,
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
from tests.integration.procs import kill_group, start_consumer, stderr_tail
from tests.integration.tap import Tap, producer_for, start_group_at_end

pytestmark = [pytest.mark.integration, pytest.mark.slow]
GROUP = "stop-trainer"
STEPS_PER_EPOCH = 52  # 512 synthetic samples, 20% held out: 410 / batch 8


def validated_job() -> JobValidated:
    job = {
        "type": "train",
        "framework": "pytorch",
        "name": "stop me",
        "config": {
            "architecture": "custom",
            "input_size": 16,
            "output_size": 4,
            "hidden_layers": [128, 128],
            # Long enough that the SIGTERM lands mid-job however late the test sees a step past
            # the first epoch (6 epochs, ~0.15 s of training past it, lost that race under load:
            # the job completed first and no job.preempted came).
            "epochs": 30,
            "batch_size": 8,
            "data": {"source": "synthetic", "num_samples": 512},
        },
    }
    result = validate_job(job, None)
    assert result.valid, result.errors
    return JobValidated(
        job_id=f"stop-{uuid.uuid4().hex[:8]}",
        name="stop me",
        type="train",
        framework="pytorch",
        config_kind=result.config.kind,
        config=result.config,
    )


async def test_sigterm_mid_epoch_resumes_at_the_step_it_stopped(settings) -> None:
    env = {
        **os.environ,
        "SPARKTRAINER_LOG_LEVEL": "INFO",  # a failure shows the trainer's last lines
        "SPARKTRAINER_PROGRESS_EVERY_S": "0.05",
    }
    await start_group_at_end(settings, GROUP, *VALIDATED_TOPICS)
    await start_group_at_end(settings, f"{GROUP}-control", JOBS_CONTROL)
    job = validated_job()
    first = await start_consumer("consumers.trainer", GROUP, env)
    second = None
    producer = producer_for(settings)
    await producer.start()
    try:
        async with Tap(settings, JOBS_LIFECYCLE, MODELS_REGISTERED) as tap:
            await send(producer, encode(job, "test"))
            mine = lambda cls: lambda e: isinstance(e, cls) and e.job_id == job.job_id  # noqa: E731
            await tap.wait_for(lambda e: mine(JobProgress)(e) and e.step > STEPS_PER_EPOCH, 1, 300)
            first.terminate()  # SIGTERM, as Kubernetes sends it
            try:
                [preempted] = await tap.wait_for(mine(JobPreempted), 1, 120)
            except AssertionError as e:  # say what the job and the trainer did instead
                seen = [(type(x).__name__, getattr(x, "attempt", None)) for x in tap.events
                        if x is not None and getattr(x, "job_id", None) == job.job_id]  # fmt: skip
                raise AssertionError(
                    f"{e}; the job's events: {seen[-12:]}; the trainer's exit code "
                    f"{first.poll()}, its last lines:\n{stderr_tail(first)}"
                ) from e
            assert first.wait(60) == 0
            second = await start_consumer("consumers.trainer", GROUP, env)
            [done] = await tap.wait_for(mine(JobCompleted), 1, 300)
            events = [e for e in tap.events if e is not None and getattr(e, "job_id", None)]
            events = [e for e in events if e.job_id == job.job_id]
    finally:
        await producer.stop()
        for proc in (first, second):
            if proc is not None and proc.poll() is None:
                proc.terminate()
                if proc.wait(60) is None:
                    kill_group(proc)
    starts = [e for e in events if isinstance(e, JobStarted)]
    steps = {a: [e.step for e in events if isinstance(e, JobProgress) and e.attempt == a]
             for a in (1, 2)}  # fmt: skip
    assert [s.attempt for s in starts] == [1, 2]
    assert preempted.attempt == 1 and preempted.step is not None
    assert preempted.step > STEPS_PER_EPOCH  # not the last epoch's checkpoint: where it was
    assert starts[1].resumed_from_step == preempted.step
    # No step lost, none twice: attempt 1 trained nothing past the stop (its checkpoint is the
    # step it reached), attempt 2 reports only steps after it.
    assert max(steps[1]) <= preempted.step < min(steps[2])
    assert not [e for e in events if isinstance(e, JobFailed)]
    assert len([e for e in events if isinstance(e, ModelRegistered)]) == 1
    assert done.attempt == 2 and done.model_id == job.job_id
