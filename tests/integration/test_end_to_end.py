"""Jobs travel the whole way on the real broker and S3: validator, trainer, projector.

The guide's Complete Workflow (train, list, fine-tune, fine-tune again), cancel, a failing job
followed by a good one, and the registry counting each model once.
"""

from __future__ import annotations

import asyncio
import copy
import uuid

import pytest
import torch

from consumers.validator import build_runtime
from sparktrainer.bus.kafka import send
from sparktrainer.contracts.envelope import encode
from sparktrainer.contracts.events import (
    CancelRequested,
    CheckpointSaved,
    JobCancelled,
    JobCompleted,
    JobFailed,
    JobProgress,
    JobRejected,
    JobStarted,
    ModelRegistered,
)
from sparktrainer.contracts.topics import (
    JOBS_CONTROL,
    JOBS_LIFECYCLE,
    JOBS_REJECTED,
    JOBS_SUBMITTED,
    JOBS_VALIDATED,
    MODELS_REGISTERED,
)
from sparktrainer.registry.models import get_model, lineage, list_models
from sparktrainer.registry.runner import Projector
from sparktrainer.services.trainer import TrainerService
from sparktrainer.storage.s3 import ObjectStore
from tests import guide
from tests.integration.tap import Tap, produce, producer_for, start_group_at_end

pytestmark = pytest.mark.integration
ALL = (JOBS_LIFECYCLE, JOBS_REJECTED, MODELS_REGISTERED)


@pytest.fixture(scope="module")
async def services(stack, tmp_path_factory):
    """A validator, a trainer and a projector, as `sparktrainer up` runs them."""
    await start_group_at_end(stack, "e2e-validator", JOBS_SUBMITTED)
    await start_group_at_end(stack, "e2e-trainer", JOBS_VALIDATED)
    await start_group_at_end(stack, "e2e-trainer-control", JOBS_CONTROL)
    validator = build_runtime(stack, ObjectStore.from_settings(stack), group_id="e2e-validator")
    trainer = TrainerService(stack, group_id="e2e-trainer", control_group_id="e2e-trainer-control")
    projector = Projector(stack, tmp_path_factory.mktemp("registry") / "registry.sqlite3")
    await projector.start()
    stop = asyncio.Event()
    tasks = [
        asyncio.create_task(validator.run()),
        asyncio.create_task(trainer.run()),
        asyncio.create_task(projector.run(stop)),
    ]
    await validator.wait_positioned()
    await trainer.wait_positioned(300)
    producer = producer_for(stack)
    await producer.start()
    yield producer, projector, trainer
    await producer.stop()
    validator.stop()
    trainer.stop()
    stop.set()
    await asyncio.gather(*tasks)
    await projector.close()


def small(job: dict, **config) -> dict:
    """The guide's job with fewer epochs and less data, so the suite stays quick."""
    job = copy.deepcopy(job)
    job["job_id"] = f"e2e-{uuid.uuid4().hex[:10]}"
    job["config"].update({"epochs": 2, "data": {"num_samples": 256}, **config})
    return job


def ended(job_id: str):
    return lambda e: (
        getattr(e, "job_id", None) == job_id
        and isinstance(e, JobCompleted | JobFailed | JobCancelled | JobRejected)
    )


async def run_to_end(stack, producer, job: dict, timeout_s: float = 240.0):
    async with Tap(stack, *ALL) as tap:
        await produce(producer, JOBS_SUBMITTED, job)
        [end] = await tap.wait_for(ended(job["job_id"]), 1, timeout_s)
        events = [e for e in tap.events if getattr(e, "job_id", None) == job["job_id"]]
    return end, events


async def wait_listed(projector, model_id: str, timeout_s: float = 30.0) -> dict:
    for _ in range(int(timeout_s / 0.2)):
        model = get_model(projector.conn, model_id)
        if model is not None:
            return model
        await asyncio.sleep(0.2)
    raise AssertionError(f"model {model_id} never listed")


async def test_complete_workflow_train_finetune_finetune(stack, store, services) -> None:
    producer, projector, _ = services
    train = small(guide.by_name("Initial Model Training"))
    end, events = await run_to_end(stack, producer, train)
    assert isinstance(end, JobCompleted), end
    progress = [e for e in events if isinstance(e, JobProgress)]
    assert progress and progress[-1].epoch == 2 and progress[-1].eta_s is not None
    [registered] = [e for e in events if isinstance(e, ModelRegistered)]
    names = {a.path for a in registered.artifacts} | {"metadata.json"}
    assert {"model.pth", "best_model.pth", "config.json", "env.json", "metadata.json"} <= names
    for name in names:
        assert store.exists(f"models/{train['job_id']}/{name}")
    weights = torch.load(_local(store, f"models/{train['job_id']}/model.pth"), weights_only=True)
    assert {"model_state_dict", "optimizer_state_dict"} <= set(weights)
    listed = await wait_listed(projector, train["job_id"])
    assert listed["name"] == "Initial Model Training"

    chain = [train["job_id"]]
    for step in ("Fine-tuning on New Task", "Further Fine-tuning"):
        child = small(guide.by_name(step), epochs=1)
        child["config"]["model_id"] = chain[-1]
        end, _ = await run_to_end(stack, producer, child)
        assert isinstance(end, JobCompleted), end
        meta = store.get_json(f"models/{child['job_id']}/metadata.json")
        assert meta["base_model_id"] == chain[-1]
        assert meta["lineage"] == chain[::-1]  # nearest ancestor first
        chain.append(child["job_id"])
        await wait_listed(projector, child["job_id"])
    tree = lineage(projector.conn, chain[-1])
    assert tree is not None and [a["model_id"] for a in tree["ancestors"]] == chain[-2::-1]
    assert all(a["registered"] for a in tree["ancestors"])


async def test_cancel_stops_the_job_and_a_late_cancel_is_answered(stack, store, services) -> None:
    producer, _, _ = services
    job = small(
        guide.by_name("Initial Model Training"),
        epochs=500,
        data={"num_samples": 2048},
        hidden_layers=[64],
    )
    async with Tap(stack, *ALL) as tap:
        await produce(producer, JOBS_SUBMITTED, job)
        await tap.wait_for(
            lambda e: isinstance(e, JobProgress) and e.job_id == job["job_id"], 1, 240
        )
        await send(
            producer, encode(CancelRequested(job_id=job["job_id"], requested_by="test"), "test")
        )
        [end] = await tap.wait_for(ended(job["job_id"]), 1, 60)
        assert isinstance(end, JobCancelled) and end.already_ended is None
        await send(producer, encode(CancelRequested(job_id=job["job_id"], reason="again"), "test"))
        late = await tap.wait_for(
            lambda e: isinstance(e, JobCancelled) and e.job_id == job["job_id"] and e.already_ended,
            1,
            60,
        )
        assert late[0].already_ended == "cancelled"
        assert not [
            e for e in tap.events if isinstance(e, ModelRegistered) and e.model_id == job["job_id"]
        ]
    assert not store.exists(f"models/{job['job_id']}/metadata.json")


async def test_a_failing_job_then_a_good_one(stack, store, services) -> None:
    producer, _, _ = services
    bad = small(
        guide.by_name("Initial Model Training"),
        data={"source": f"s3://{stack.s3_bucket}/no/such/data.npz"},
    )
    end, _ = await run_to_end(stack, producer, bad)
    assert isinstance(end, JobFailed)
    assert "no/such/data.npz" in end.reason and "Traceback" not in end.reason
    good = small(guide.by_name("Initial Model Training"))
    end, events = await run_to_end(stack, producer, good)
    assert isinstance(end, JobCompleted)
    assert sum(isinstance(e, JobStarted) for e in events) == 1


async def test_redelivered_validated_job_is_not_trained_twice(stack, store, services) -> None:
    producer, projector, _ = services
    job = small(guide.by_name("Initial Model Training"), epochs=1)
    end, _ = await run_to_end(stack, producer, job)
    assert isinstance(end, JobCompleted)
    before = list_models(projector.conn).total
    async with Tap(stack, *ALL) as tap:
        await produce(producer, JOBS_SUBMITTED, job)  # the same submission again
        again = await tap.wait_for(ended(job["job_id"]), 1, 120)
        assert isinstance(again[0], JobCompleted)
        assert not [
            e for e in tap.events if isinstance(e, JobStarted) and e.job_id == job["job_id"]
        ]
    await asyncio.sleep(1.0)
    assert list_models(projector.conn).total == before


def _local(store, key: str):
    import io

    return io.BytesIO(store.get_bytes(key))


async def test_a_dead_worker_is_retried_from_its_checkpoint(stack, services) -> None:
    import os
    import signal

    producer, _, trainer = services
    job = small(guide.by_name("Initial Model Training"), epochs=6, data={"num_samples": 1024})
    async with Tap(stack, *ALL) as tap:
        await produce(producer, JOBS_SUBMITTED, job)
        await tap.wait_for(
            lambda e: isinstance(e, CheckpointSaved) and e.job_id == job["job_id"], 1, 240
        )
        os.kill(trainer.worker.pid, signal.SIGKILL)  # OOM-killer style: only the worker dies
        [end] = await tap.wait_for(ended(job["job_id"]), 1, 240)
        starts = [e for e in tap.events if isinstance(e, JobStarted) and e.job_id == job["job_id"]]
    assert isinstance(end, JobCompleted), end
    assert [s.attempt for s in starts] == [1, 2]
    assert starts[1].resumed_from_epoch is not None and starts[1].resumed_from_epoch >= 1
