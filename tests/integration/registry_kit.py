"""Events for the registry, API, replay and CLI tests, sent the way the services send them."""

from __future__ import annotations

import uuid
from typing import Any

from pydantic import BaseModel

from sparktrainer.bus.kafka import make_producer
from sparktrainer.contracts.envelope import encode
from sparktrainer.contracts.events import (
    Artifact,
    JobCompleted,
    JobProgress,
    JobStarted,
    JobValidated,
    ModelRegistered,
)
from sparktrainer.settings import Settings
from tests import guide

SOURCE = "tests/registry"
GUIDE_MLP = guide.by_name("Initial Model Training")
# What every write to the API carries (api/door.py answers 415 without it)
JSON = {"content-type": "application/json"}


def unique(prefix: str) -> str:
    """An id no other test (or earlier run on a kept log) uses."""
    return f"{prefix}-{uuid.uuid4().hex[:12]}"


def model(model_id: str, base: str | None = None, tags: list[str] | None = None, **kw: Any):
    """A registration as the trainer announces it."""
    return ModelRegistered(
        model_id=model_id,
        job_id=model_id,
        name=f"model {model_id}",
        framework="pytorch",
        architecture={"architecture": "custom", "input_size": 4, "output_size": 2},
        artifacts=kw.pop(
            "artifacts",
            [
                Artifact(path="model.pth", size_bytes=1234, sha256="a" * 64),
                Artifact(path="config.json", size_bytes=56, sha256="b" * 64),
            ],
        ),
        storage_prefix=f"models/{model_id}/",
        base_model_id=base,
        lineage=kw.pop("lineage", [base] if base else []),
        tags=tags or [],
        metrics={"accuracy": 0.9},
        **kw,
    )


def validated(job_id: str) -> JobValidated:
    return JobValidated(
        job_id=job_id,
        name="mlp",
        type="train",
        framework="pytorch",
        config_kind="pytorch.mlp",
        config={"input_size": 4, "output_size": 2},
    )


def started(job_id: str, total_epochs: int = 2) -> JobStarted:
    return JobStarted(
        job_id=job_id,
        name="mlp",
        framework="pytorch",
        config_kind="pytorch.mlp",
        device="cpu",
        worker="test",
        total_epochs=total_epochs,
    )


def progress(job_id: str, epoch: int, total_epochs: int = 2, loss: float = 0.5) -> JobProgress:
    return JobProgress(
        job_id=job_id,
        epoch=epoch,
        total_epochs=total_epochs,
        step=epoch * 10,
        total_steps=total_epochs * 10,
        loss=loss,
        accuracy=0.75,
        eta_s=3.0,
    )


def completed(job_id: str) -> JobCompleted:
    return JobCompleted(job_id=job_id, model_id=job_id, metrics={"accuracy": 0.91})


async def publish(settings: Settings, *events: BaseModel) -> list[tuple[str, int, int]]:
    """Send events in order (each acknowledged); returns (topic, partition, offset) of each."""
    producer = make_producer(settings)
    await producer.start()
    try:
        out = []
        for event in events:
            rec = encode(event, SOURCE)
            meta = await producer.send_and_wait(
                rec.topic, rec.value, key=rec.key or None, headers=rec.headers
            )
            out.append((rec.topic, meta.partition, meta.offset))
        return out
    finally:
        await producer.stop()
