"""Helpers for the scheduling and sweep tests: a validator, a projector and trainers of chosen
classes, in this process, on fresh groups positioned at the end of the topics they read."""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any

from consumers.validator import build_runtime
from sparktrainer.contracts.events import JobStarted
from sparktrainer.contracts.topics import JOBS_CONTROL, class_topics
from sparktrainer.registry.runner import Projector
from sparktrainer.services.trainer import TrainerService
from sparktrainer.services.validator import validator_topics
from sparktrainer.settings import Settings
from sparktrainer.storage.s3 import ObjectStore
from tests.integration.tap import start_group_at_end


def digits_job(prefix: str, *, priority: str = "normal", gpus: int = 1, memory_gib: float = 0,
               epochs: int = 1, **config: Any) -> dict[str, Any]:  # fmt: skip
    """A tiny digits MLP job of a class and priority (about 0.1 s an epoch here)."""
    return {
        "job_id": f"{prefix}-{uuid.uuid4().hex[:8]}",
        "name": prefix,
        "type": "train",
        "framework": "pytorch",
        "priority": priority,
        "resources": {"gpus": gpus, "min_gpu_memory_gib": memory_gib},
        "config": {"architecture": "custom", "input_size": 64, "output_size": 10,
                   "hidden_layers": [32], "epochs": epochs, "batch_size": 64,
                   "data": {"source": "digits"}, **config},
    }  # fmt: skip


def started_order(events: list[Any], job_ids: set[str]) -> list[str]:
    """The jobs among ``job_ids`` in the order they started, by the trainer's clock (a tap reads
    partitions in batches, so the order it saw them in is not the order they happened in)."""
    starts = [e for e in events if isinstance(e, JobStarted) and e.job_id in job_ids]
    return [e.job_id for e in sorted(starts, key=lambda e: e.at)]


async def fresh_group(settings: Settings, classes: str) -> str:
    """A trainer group that starts at the current end of the topics of ``classes``."""
    group = f"sched-{uuid.uuid4().hex[:8]}"
    names = tuple(c.strip() for c in classes.split(","))
    await start_group_at_end(settings, group, *class_topics(*names))
    await start_group_at_end(settings, f"{group}-control", JOBS_CONTROL)
    return group


async def start_trainer(
    settings: Settings, classes: str, group: str | None = None, **overrides: Any
) -> tuple[TrainerService, asyncio.Task[int]]:
    """A trainer serving ``classes`` (on a fresh group unless given), running as a task."""
    group = group or await fresh_group(settings, classes)
    mine = settings.model_copy(update={"trainer_classes": classes, "trainer_heartbeat_s": 1.0,
                                       **overrides})  # fmt: skip
    trainer = TrainerService(mine, group_id=group)
    task = asyncio.create_task(trainer.run())
    await trainer.wait_positioned(300)
    return trainer, task


async def stop_trainer(trainer: TrainerService, task: asyncio.Task[int]) -> None:
    trainer.stop()
    await asyncio.wait_for(task, 120)


@asynccontextmanager
async def door_and_read_model(settings: Settings, db: Path) -> AsyncIterator[Projector]:
    """A validator (fresh group at the end of jobs.submitted) and a projector, as tasks."""
    group = f"sched-validator-{uuid.uuid4().hex[:8]}"
    await start_group_at_end(settings, group, *validator_topics(settings))
    validator = build_runtime(settings, ObjectStore.from_settings(settings), group_id=group)
    projector = Projector(settings, db)
    await projector.start()
    stop = asyncio.Event()
    tasks = [asyncio.create_task(validator.run()), asyncio.create_task(projector.run(stop))]
    await validator.wait_positioned()
    try:
        yield projector
    finally:
        validator.stop()
        stop.set()
        await asyncio.gather(*tasks)
        await projector.close()
