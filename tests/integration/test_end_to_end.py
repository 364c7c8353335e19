"""Jobs travel the whole way on the real broker and S3: validator, trainer, projector.

The guide's Complete Workflow (train, list, fine-tune, fine-tune again), cancel, a failing job
followed by a good one, and the registry counting each model once.
"""

from __future__ import annotations

import asyncio
import copy
import hashlib
import io
import uuid

import numpy as np
import pytest
import torch

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
from sparktrainer.contracts.topics import JOBS_SUBMITTED
from sparktrainer.registry.models import lineage, list_models
from sparktrainer.storage.job_logs import read_job_log
from tests import guide
from tests.integration.services_kit import ANSWERS as ALL
from tests.integration.services_kit import ended, run_to_end, running_services, wait_listed
from tests.integration.tap import Tap, produce

pytestmark = pytest.mark.integration


@pytest.fixture(scope="module")
async def services(stack, tmp_path_factory):
    """A validator, a trainer and a projector, as `sparktrainer up` runs them."""
    db = tmp_path_factory.mktemp("registry") / "registry.sqlite3"
    async with running_services(stack, "e2e", db) as running:
        yield running


def small(job: dict, **config) -> dict:
    """The guide's job with fewer epochs and less data, so the suite stays quick."""
    job = copy.deepcopy(job)
    job["job_id"] = f"e2e-{uuid.uuid4().hex[:10]}"
    job["config"].update({"epochs": 2, "data": {"num_samples": 256}, **config})
    return job


async def test_complete_workflow_train_finetune_finetune(stack, store, services) -> None:
    projector = services.projector
    train = small(guide.by_name("Initial Model Training"))
    end, events = await run_to_end(services, train)
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
        end, _ = await run_to_end(services, child)
        assert isinstance(end, JobCompleted), end
        meta = store.get_json(f"models/{child['job_id']}/metadata.json")
        assert meta["base_model_id"] == chain[-1]
        assert meta["lineage"] == chain[::-1]  # nearest ancestor first
        chain.append(child["job_id"])
        await wait_listed(projector, child["job_id"])
    tree = lineage(projector.conn, chain[-1])
    assert tree is not None and [a["model_id"] for a in tree["ancestors"]] == chain[-2::-1]
    assert all(a["registered"] for a in tree["ancestors"])
    # each parent's data is in the fine-tune's lineage: a built-in set with its sampling
    for node in [tree["model"], *tree["ancestors"]]:
        assert node["data"] == {**SYNTHETIC_256, "sampling": {**SYNTHETIC_256["sampling"]}}


SYNTHETIC_256 = {
    "source": "synthetic", "kind": "builtin", "sha256": None, "size_bytes": 0,
    "object_count": 0, "objects": [],
    "sampling": {"seed": 0, "validation_split": 0.2, "num_samples": 256},
}  # fmt: skip


async def test_an_overwritten_object_gives_the_next_model_other_data(stack, store, services):
    """Same key, new bytes: the two models' lineage names different sha256s (and ETags)."""
    key = f"data-identity/{uuid.uuid4().hex[:8]}/digits.npz"
    uploaded, trees = [], []
    for seed in (1, 2):
        blob = _npz(seed)
        store.put_bytes(key, blob)
        uploaded.append(hashlib.sha256(blob).hexdigest())
        source = {"source": f"s3://{stack.s3_bucket}/{key}"}
        job = small(guide.by_name("Initial Model Training"), epochs=1, hidden_layers=[8],
                    input_size=16, output_size=2, data=source)  # fmt: skip
        end, _ = await run_to_end(services, job)
        assert isinstance(end, JobCompleted), end
        await wait_listed(services.projector, job["job_id"])
        trees.append(lineage(services.projector.conn, job["job_id"]))
    first, second = (t["model"]["data"] for t in trees)
    assert [first["sha256"], second["sha256"]] == uploaded and uploaded[0] != uploaded[1]
    for data, sha in ((first, uploaded[0]), (second, uploaded[1])):
        [obj] = data["objects"]
        assert obj["uri"] == f"s3://{stack.s3_bucket}/{key}" and obj["sha256"] == sha
        assert obj["etag"] and obj["size_bytes"] == data["size_bytes"] > 0
    assert first["objects"][0]["etag"] != second["objects"][0]["etag"]
    meta = store.get_json(f"models/{trees[1]['model']['model_id']}/metadata.json")
    assert meta["data"] == second


def _npz(seed: int) -> bytes:
    rng = np.random.default_rng(seed)
    x = rng.normal(size=(64, 16)).astype("float32")
    buf = io.BytesIO()
    np.savez(buf, X=x, y=(x[:, 0] > 0).astype("int64"))
    return buf.getvalue()


async def test_cancel_stops_the_job_and_a_late_cancel_is_answered(stack, store, services) -> None:
    producer = services.producer
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
    bad = small(
        guide.by_name("Initial Model Training"),
        data={"source": f"s3://{stack.s3_bucket}/no/such/data.npz"},
    )
    end, _ = await run_to_end(services, bad)
    assert isinstance(end, JobFailed)
    assert "no/such/data.npz" in end.reason and "Traceback" not in end.reason
    assert end.cause is FailureReason.DATA and not end.retriable, end
    log, _ = read_job_log(store, bad["job_id"], 1)  # uploaded before the end was announced
    assert b"no/such/data.npz" in log and b"Traceback" in log
    good = small(guide.by_name("Initial Model Training"))
    end, events = await run_to_end(services, good)
    assert isinstance(end, JobCompleted)
    assert sum(isinstance(e, JobStarted) for e in events) == 1


async def test_redelivered_validated_job_is_not_trained_twice(stack, store, services) -> None:
    producer, projector = services.producer, services.projector
    job = small(guide.by_name("Initial Model Training"), epochs=1)
    end, _ = await run_to_end(services, job)
    assert isinstance(end, JobCompleted)
    await wait_listed(projector, job["job_id"])  # its registration is on another topic
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

    producer, trainer = services.producer, services.trainer
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
