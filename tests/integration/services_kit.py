"""The three services of ``sparktrainer up`` in this process, and jobs run through them.

The end-to-end tests and the guide's examples use these: a validator, a trainer (with its warm
worker process) and a registry projector on the session's real broker and S3 server.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from aiokafka import AIOKafkaProducer

from consumers.validator import build_runtime
from sparktrainer.contracts.events import JobCancelled, JobCompleted, JobFailed, JobRejected
from sparktrainer.contracts.topics import (
    JOBS_CONTROL,
    JOBS_LIFECYCLE,
    JOBS_REJECTED,
    JOBS_SUBMITTED,
    MODELS_REGISTERED,
    VALIDATED_TOPICS,
)
from sparktrainer.registry.models import get_model
from sparktrainer.registry.runner import Projector
from sparktrainer.services.trainer import TrainerService
from sparktrainer.services.validator import validator_topics
from sparktrainer.settings import Settings
from sparktrainer.storage.s3 import ObjectStore
from tests.integration.tap import Tap, produce, producer_for, start_group_at_end

ANSWERS = (JOBS_LIFECYCLE, JOBS_REJECTED, MODELS_REGISTERED)


@dataclass
class Services:
    """What a test drives: a producer onto the bus, the projector's read model, the trainer."""

    settings: Settings
    producer: AIOKafkaProducer
    projector: Projector
    trainer: TrainerService


@contextlib.asynccontextmanager
async def running_services(settings: Settings, prefix: str, db: Path) -> AsyncIterator[Services]:
    """Validator, trainer and projector as `sparktrainer up` runs them (groups ``prefix-*``)."""
    groups = {name: f"{prefix}-{name}" for name in ("validator", "trainer", "control")}
    await start_group_at_end(settings, groups["validator"], *validator_topics(settings))
    await start_group_at_end(settings, groups["trainer"], *VALIDATED_TOPICS)
    await start_group_at_end(settings, groups["control"], JOBS_CONTROL)
    store = ObjectStore.from_settings(settings)
    validator = build_runtime(settings, store, group_id=groups["validator"])
    trainer = TrainerService(
        settings, group_id=groups["trainer"], control_group_id=groups["control"]
    )
    projector = Projector(settings, db)
    await projector.start()
    stop = asyncio.Event()
    tasks = [
        asyncio.create_task(validator.run()),
        asyncio.create_task(trainer.run()),
        asyncio.create_task(projector.run(stop)),
    ]
    producer = producer_for(settings)
    try:
        await validator.wait_positioned()
        await trainer.wait_positioned(300)
        await producer.start()
        yield Services(settings, producer, projector, trainer)
    finally:
        await producer.stop()
        validator.stop()
        trainer.stop()
        stop.set()
        await asyncio.gather(*tasks)
        await projector.close()


def ended(job_id: str) -> Callable[[Any], bool]:
    """Whether an event is the job's last answer (completed, failed, cancelled or rejected)."""
    return lambda e: (
        getattr(e, "job_id", None) == job_id
        and isinstance(e, JobCompleted | JobFailed | JobCancelled | JobRejected)
    )


async def run_to_end(
    services: Services, job: dict[str, Any], timeout_s: float = 240.0
) -> tuple[Any, list[Any]]:
    """Submit ``job`` (bare JSON, as a Kafka UI would) and wait for its end; (end, its events)."""
    async with Tap(services.settings, *ANSWERS) as tap:
        await produce(services.producer, JOBS_SUBMITTED, job)
        [end] = await tap.wait_for(ended(job["job_id"]), 1, timeout_s)
        events = [e for e in tap.events if getattr(e, "job_id", None) == job["job_id"]]
    return end, events


async def wait_listed(projector: Projector, model_id: str, timeout_s: float = 30.0) -> dict:
    """The model's row in the read model, once the projector has it (fails on timeout)."""
    for _ in range(int(timeout_s / 0.2)):
        model = get_model(projector.conn, model_id)
        if model is not None:
            return model
        await asyncio.sleep(0.2)
    raise AssertionError(f"model {model_id} never listed")
