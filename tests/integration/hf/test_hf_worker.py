"""HF jobs through the warm training worker on the real S3: train, then SIGKILL and resume."""

from __future__ import annotations

import os
import signal
from collections.abc import AsyncIterator
from typing import Any

import pytest
import pytest_asyncio

from sparktrainer.contracts.events import CheckpointSaved, JobProgress, JobStarted, JobValidated
from sparktrainer.contracts.jobspec import HuggingFaceConfig
from sparktrainer.settings import Settings
from sparktrainer.storage.layout import checkpoint_prefix, model_prefix
from sparktrainer.training.worker import WarmWorker

pytestmark = pytest.mark.integration


@pytest_asyncio.fixture(scope="module")
async def worker(stack: Settings) -> AsyncIterator[WarmWorker]:
    warm = WarmWorker(stack.model_copy(update={"progress_every_s": 0.1}))
    await warm.start()
    yield warm
    await warm.stop()


def hf_job(job_id: str, config: dict[str, Any]) -> JobValidated:
    normalized = HuggingFaceConfig.model_validate(config).model_dump(mode="json")
    return JobValidated(
        job_id=job_id, name=job_id, type="finetune", framework="huggingface",
        config_kind="huggingface", config=normalized,
    )  # fmt: skip


class Seen:
    """Every event the worker forwards, with an optional reaction."""

    def __init__(self, react: Any = None) -> None:
        self.events: list[Any] = []
        self.react = react

    async def __call__(self, event: Any) -> None:
        self.events.append(event)
        if self.react is not None:
            self.react(event)

    def of(self, kind: type) -> list[Any]:
        return [e for e in self.events if isinstance(e, kind)]


async def test_sigkilled_worker_resumes_the_hf_job_from_its_checkpoint(
    worker, store, tiny_bert, job_id
) -> None:
    jid = job_id("worker-kill")
    job = hf_job(jid, {
        "model_source": "local", "model_path": str(tiny_bert), "epochs": 6, "batch_size": 16,
        "learning_rate": 3e-3, "data": {"num_samples": 384},
    })  # fmt: skip
    old_pid = worker.pid
    killed_after: list[int] = []

    def kill_after_first_checkpoint(event: Any) -> None:
        if isinstance(event, CheckpointSaved) and not killed_after:
            killed_after.append(event.epoch)
            os.kill(old_pid, signal.SIGKILL)

    died = await worker.run(job, 1, Seen(kill_after_first_checkpoint))
    assert died.status == "failed" and died.retriable, died.reason
    assert list(store.list(checkpoint_prefix(jid)))
    seen = Seen()
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
