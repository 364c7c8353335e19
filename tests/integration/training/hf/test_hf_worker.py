"""HF jobs through the warm training worker on the real S3: train, then SIGKILL and resume."""

from __future__ import annotations

import os
import signal
from typing import Any

import pytest

from sparktrainer.contracts.events import CheckpointSaved, JobProgress, JobStarted
from sparktrainer.storage.layout import checkpoint_prefix, model_prefix
from tests.unit.training.jobkit import make_job

pytestmark = pytest.mark.integration


async def test_sigkilled_worker_resumes_the_hf_job_from_its_checkpoint(
    worker, recorder, store, tiny_bert, job_id
) -> None:
    jid = job_id("worker-kill")
    job = make_job(jid, "huggingface", {
        "model_source": "local", "model_path": str(tiny_bert), "epochs": 6, "batch_size": 16,
        "learning_rate": 3e-3, "data": {"num_samples": 384},
    }, "finetune")  # fmt: skip
    old_pid = worker.pid
    killed_after: list[int] = []

    def kill_after_first_checkpoint(event: Any) -> None:
        if isinstance(event, CheckpointSaved) and not killed_after:
            killed_after.append(event.epoch)
            os.kill(old_pid, signal.SIGKILL)

    died = await worker.run(job, 1, recorder(kill_after_first_checkpoint))
    assert died.status == "failed" and died.retriable, died.reason
    assert list(store.list(checkpoint_prefix(jid)))
    seen = recorder()
    resumed = await worker.run(job, 2, seen)
    assert resumed.status == "completed", resumed.reason
    assert worker.pid != old_pid
    started = seen.of(JobStarted)[0]
    assert started.attempt == 2 and started.resumed_from_epoch >= killed_after[0]
    assert seen.of(JobProgress)[0].epoch == started.resumed_from_epoch + 1
    assert resumed.registered is not None and resumed.registered.metrics["epochs"] == 6
    assert resumed.registered.metrics["val_accuracy"] >= 0.9
    files = {k.rsplit("/", 1)[-1] for k in store.list(model_prefix(jid))}
    assert {"model.safetensors", "config.json", "tokenizer.json", "metadata.json"} <= files
