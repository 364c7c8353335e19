"""The warm worker against the real embedded S3: train, stay warm, fail, cancel, die, resume."""

from __future__ import annotations

import asyncio
import io
import os
import signal
import subprocess
import sys
import time
import uuid
from collections.abc import AsyncIterator

import numpy as np
import pytest
import pytest_asyncio

from sparktrainer.contracts.events import CheckpointSaved, JobProgress, JobStarted
from sparktrainer.contracts.failures import FailureReason
from sparktrainer.storage.layout import checkpoint_prefix, model_prefix
from sparktrainer.training.checkpoint import safe_load
from sparktrainer.training.worker.warm import WarmWorker
from tests.integration.cgroup_kit import cage_unavailable, memory_cage
from tests.integration.faults_kit import S3Gate
from tests.integration.hostile_kit import npz_bomb
from tests.integration.logs_kit import log_through_cli_and_api

pytestmark = pytest.mark.integration

DIGITS_MLP = {
    "input_size": 64,
    "output_size": 10,
    "hidden_layers": [32],
    "epochs": 2,
    "data": {"source": "digits"},
}


@pytest_asyncio.fixture(scope="module")
async def gate(stack) -> AsyncIterator[S3Gate]:
    """A relay in front of the stack's S3 for this module's worker (it passes everything on
    until a test arms it to swallow one request)."""
    relay = S3Gate(int(stack.s3_endpoint.rsplit(":", 1)[1]))
    await relay.start()
    yield relay
    await relay.stop()


@pytest_asyncio.fixture(scope="module")
async def worker(stack, gate) -> AsyncIterator[WarmWorker]:
    """The module's warm worker (``workerkit.worker``), its S3 through ``gate``."""
    update = {"progress_every_s": 0.1, "s3_endpoint": f"http://127.0.0.1:{gate.port}"}
    warm = WarmWorker(stack.model_copy(update=update))
    await warm.start()
    yield warm
    await warm.stop()


def new_id(prefix: str) -> str:
    return f"{prefix}-{uuid.uuid4().hex[:8]}"


async def test_worker_trains_registers_and_reports_in_order(
    worker, make_job, recorder, store, tmp_path
) -> None:
    job_id = new_id("w-train")
    seen = recorder()
    outcome = await worker.run(make_job(job_id, "pytorch.mlp", DIGITS_MLP), 1, seen)
    assert outcome.status == "completed", outcome.reason
    assert outcome.registered is not None and outcome.registered.model_id == job_id
    assert outcome.registered.metrics["val_accuracy"] > 0.35
    assert isinstance(seen.events[0], JobStarted)
    assert [c.epoch for c in seen.of(CheckpointSaved)] == [1, 2]
    steps = [p.step for p in seen.of(JobProgress)]
    assert steps == sorted(steps) and steps[-1] == seen.of(JobProgress)[-1].total_steps
    keys = [k.removeprefix(model_prefix(job_id)) for k in store.list(model_prefix(job_id))]
    files = sorted(k for k in keys if not k.startswith("logs/"))
    assert files == ["best_model.pth", "config.json", "env.json", "metadata.json", "model.pth"]
    assert any(k.startswith("logs/events.out.tfevents.") for k in keys)  # TensorBoard's
    store.get_file(model_prefix(job_id) + "model.pth", tmp_path / "model.pth")
    assert "model_state_dict" in safe_load(tmp_path / "model.pth", "model.pth")
    assert not list(store.list(checkpoint_prefix(job_id)))


async def test_a_second_job_starts_warm(worker, make_job, recorder) -> None:
    await worker.start()  # warm: an earlier test may have left its replacement still starting
    pid = worker.pid
    first_step: list[float] = []
    handed = time.monotonic()

    def mark(event) -> None:
        if isinstance(event, JobProgress) and not first_step:
            first_step.append(time.monotonic() - handed)

    config = {**DIGITS_MLP, "epochs": 1, "data": {"num_samples": 256}, "input_size": 16}
    outcome = await worker.run(make_job(new_id("w-warm"), "pytorch.mlp", config), 1, recorder(mark))
    assert outcome.status == "completed", outcome.reason
    assert worker.pid == pid
    # No torch import before the first step: it comes sooner than a bare import of torch takes
    # on this machine now (typically 0.05 s against 1-2 s; both slow down alike under load).
    assert first_step[0] < await asyncio.to_thread(_torch_import_s), first_step


async def test_a_failing_job_then_a_good_one_in_the_same_worker(worker, make_job, recorder) -> None:
    await worker.start()  # warm: an earlier test may have left its replacement still starting
    pid = worker.pid
    bad = {**DIGITS_MLP, "input_size": 10}
    failed = await worker.run(make_job(new_id("w-bad"), "pytorch.mlp", bad), 1, recorder())
    assert failed.status == "failed" and failed.error_type == "DataError"
    assert failed.cause is FailureReason.DATA
    assert failed.reason.startswith("DataError: digits") and "set input_size to 64" in failed.reason
    assert "Traceback" not in failed.reason and not failed.retriable
    good = await worker.run(make_job(new_id("w-good"), "pytorch.mlp", DIGITS_MLP), 1, recorder())
    assert good.status == "completed" and worker.pid == pid


async def test_an_attempts_output_is_kept_and_read_through_the_cli_and_the_api(
    worker, make_job, store, settings, tmp_path, capsysbinary
) -> None:
    """A job that fails in setup: its worker's log (the traceback) is in S3 before its end."""
    import httpx

    from sparktrainer.api.app import create_app
    from sparktrainer.cli.main import main as cli
    from sparktrainer.contracts.envelope import decode
    from sparktrainer.contracts.events import JobFailed
    from sparktrainer.storage.job_logs import logged_attempts, read_job_log
    from sparktrainer.training.runner import CancelBook, drive_job

    job = make_job(new_id("w-logs"), "pytorch.mlp", {**DIGITS_MLP, "input_size": 10})
    sent: list = []

    async def send(record) -> None:
        sent.append(record)

    follow = ["jobs", "logs", job.job_id, "--follow", "--timeout", "120"]
    follower = asyncio.ensure_future(asyncio.to_thread(cli, follow))  # before the job exists
    [end] = await drive_job(job, worker=worker, store=store, cancels=CancelBook(), send=send,
                            max_attempts=1)  # fmt: skip
    assert await follower == 0  # returned once the end was recorded, the log printed whole
    followed = capsysbinary.readouterr()
    ended = decode(end.value, end.headers)
    assert isinstance(ended, JobFailed)
    [used] = ended.usage  # the trainer's clock: the attempt held the worker, which used CPU
    assert used.attempt == 1 and used.wall_s > 0 and used.cpu_s > 0 and used.gpu_s == 0
    assert logged_attempts(store, job.job_id) == [1]
    text, size = read_job_log(store, job.job_id, 1)
    assert b"job_failed" in text and b"Traceback" in text and b"set input_size to 64" in text
    assert size == len(text) and not worker.logs.path(job.job_id, 1).exists()

    app = create_app(settings, db_path=tmp_path / "api.sqlite3")
    async with app.router.lifespan_context(app):
        transport = httpx.ASGITransport(app=app)
        async with httpx.AsyncClient(transport=transport, base_url="http://localhost") as api:
            whole = await api.get(f"/api/jobs/{job.job_id}/logs")
            tail = await api.get(f"/api/jobs/{job.job_id}/logs", params={"offset": size - 40})
            other = await api.get(f"/api/jobs/{job.job_id}/logs", params={"attempt": 2})
    assert whole.status_code == 200 and whole.content == text
    assert whole.headers["x-attempt"] == "1" and whole.headers["x-log-size"] == str(size)
    assert tail.status_code == 200 and tail.content == text[-40:]
    assert other.status_code == 404 and "attempts [1]" in other.json()["detail"]

    assert followed.out == text and b"attempt 1" in followed.err
    assert cli(["jobs", "logs", job.job_id]) == 0
    printed = capsysbinary.readouterr()
    assert printed.out == text and b"attempt 1 of [1]" in printed.err
    assert cli(["jobs", "logs", job.job_id, "--attempt", "3"]) == 2


async def test_cancel_stops_the_job_at_its_next_step(worker, make_job, recorder, store) -> None:
    job_id = new_id("w-cancel")

    def cancel_on_progress(event) -> None:
        if isinstance(event, JobProgress):
            assert worker.cancel(job_id, "user asked")

    config = {**DIGITS_MLP, "epochs": 500}
    outcome = await worker.run(
        make_job(job_id, "pytorch.mlp", config), 1, recorder(cancel_on_progress)
    )
    assert outcome.status == "cancelled" and outcome.reason == "user asked"
    assert not store.exists(model_prefix(job_id) + "metadata.json")
    assert not worker.cancel(job_id)  # nothing runs any more


async def test_a_worker_killed_mid_checkpoint_upload_resumes_from_the_last_whole_one(
    worker, gate, make_job, store, settings, tmp_path, capsysbinary
) -> None:
    """Issue 18: SIGKILL while the third checkpoint's PUT is half sent (held in the relay): the
    attempt fails as crashed by SIGKILL, latest.pt is still the second checkpoint, whole, so the
    retry resumes from epoch 2 passing over nothing and registers one model; the killed
    attempt's log is readable through the CLI and the API."""
    from sparktrainer.contracts.envelope import decode
    from sparktrainer.contracts.events import JobCompleted
    from sparktrainer.training.runner import CancelBook, drive_job

    small = {"input_size": 16, "output_size": 4, "hidden_layers": [16], "epochs": 12,
             "data": {"num_samples": 256}}  # fmt: skip
    job = make_job(new_id("w-kill"), "pytorch.mlp", small)
    await worker.start()
    old_pid, restarts = worker.pid, worker.restarts
    assert old_pid is not None
    gate.arm(f"PUT /{store.bucket}/checkpoints/{job.job_id}/latest.pt".encode(), skip=2)

    async def kill_mid_upload() -> None:
        await gate.held.wait()
        os.kill(old_pid, signal.SIGKILL)  # the held request never gets the rest of its body

    outcomes, sent, run = [], [], worker.run

    async def recorded_run(*args, **kwargs):
        outcomes.append(await run(*args, **kwargs))
        return outcomes[-1]

    async def send(record) -> None:
        sent.append(decode(record.value, record.headers))

    killer = asyncio.ensure_future(kill_mid_upload())
    worker.run = recorded_run
    try:
        [end] = await drive_job(job, worker=worker, store=store, cancels=CancelBook(), send=send,
                                max_attempts=2)  # fmt: skip
    finally:
        del worker.run
        killer.cancel()
        gate.release()
    died, resumed = outcomes
    assert died.status == "failed" and died.retriable
    assert died.reason == "training worker died (SIGKILL)"
    assert died.cause is FailureReason.CRASHED and died.signal == signal.SIGKILL
    assert resumed.status == "completed", resumed.reason
    assert worker.pid != old_pid and worker.restarts > restarts
    saved = [c.epoch for c in sent if isinstance(c, CheckpointSaved) and c.attempt == 1]
    assert saved == [1, 2]  # the third one's upload was cut off
    [started] = [e for e in sent if isinstance(e, JobStarted) and e.attempt == 2]
    assert started.resumed_from_epoch == 2 and started.skipped_checkpoints == []
    assert next(p.epoch for p in sent if isinstance(p, JobProgress) and p.attempt == 2) == 3
    completed = decode(end.value, end.headers)
    assert isinstance(completed, JobCompleted) and completed.attempt == 2
    assert resumed.registered is not None and resumed.registered.metrics["epochs"] == 12
    metadata = [k for k in store.list(model_prefix(job.job_id)) if k.endswith("metadata.json")]
    assert len(metadata) == 1
    text = await log_through_cli_and_api(settings, job.job_id, 1, capsysbinary, tmp_path)
    assert b"worker ended [crashed]: training worker died (SIGKILL)" in text


async def test_three_level_fine_tune_chain_through_s3(worker, make_job, recorder, store) -> None:
    a, b, c = new_id("chain-a"), new_id("chain-b"), new_id("chain-c")
    assert (
        await worker.run(make_job(a, "pytorch.mlp", {**DIGITS_MLP, "epochs": 1}), 1, recorder())
    ).status == "completed"
    tune = {"epochs": 1, "data": {"source": "digits"}}
    out_b = await worker.run(
        make_job(b, "pytorch.registered", {**tune, "model_id": a}, "finetune"), 1, recorder()
    )
    out_c = await worker.run(
        make_job(
            c, "pytorch.registered", {"epochs": 1, "model_id": b, "num_classes": 4}, "finetune"
        ),
        1,
        recorder(),
    )
    assert out_b.status == out_c.status == "completed", (out_b.reason, out_c.reason)
    meta = store.get_json(model_prefix(c) + "metadata.json")
    assert meta["base_model_id"] == b and meta["lineage"] == [b, a]
    config = store.get_json(model_prefix(c) + "config.json")
    assert config["params"]["input_size"] == 64 and config["num_classes"] == 4
    assert config["params"]["hidden_layers"] == [32]


async def test_a_worker_that_died_while_idle_is_replaced_before_the_next_job(
    worker, make_job, recorder
) -> None:
    await worker.start()  # warm: an earlier test may have left its replacement still starting
    old_pid = worker.pid
    assert old_pid is not None
    os.kill(old_pid, signal.SIGKILL)
    config = {**DIGITS_MLP, "epochs": 1, "data": {"num_samples": 128}, "input_size": 16}
    outcome = await worker.run(make_job(new_id("w-idle"), "pytorch.mlp", config), 1, recorder())
    assert outcome.status == "completed", outcome.reason
    assert worker.pid != old_pid


async def test_training_data_from_an_npz_in_s3(worker, make_job, recorder, store) -> None:
    rng = np.random.default_rng(0)
    y = rng.integers(0, 3, 300)
    x = (np.eye(3)[y] * 3 + rng.normal(size=(300, 3))).astype(np.float32)
    buf = io.BytesIO()
    np.savez(buf, X=x, y=y)
    key = f"data/{new_id('npz')}.npz"
    store.put_bytes(key, buf.getvalue())
    config = {
        "input_size": 3,
        "output_size": 3,
        "hidden_layers": [16],
        "epochs": 3,
        "learning_rate": 0.01,
        "data": {"source": f"s3://{store.bucket}/{key}"},
    }
    outcome = await worker.run(make_job(new_id("w-npz"), "pytorch.mlp", config), 1, recorder())
    assert outcome.status == "completed", outcome.reason
    assert outcome.registered.metrics["val_accuracy"] > 0.6  # chance is 1/3


async def test_a_hung_job_is_killed_with_its_stacks_logged_and_resumes_from_its_checkpoint(
    worker, gate, make_job, store, settings, tmp_path, capsysbinary
) -> None:
    """Issue 18 item 5: S3 swallows the copy before the second checkpoint's upload, so the loop
    waits at the third for ever; the watchdog (a 3 s floor for attempt 1) writes the worker's
    stacks to the attempt's log, kills it as hung, and the retry resumes from the first
    checkpoint and registers one model."""
    from sparktrainer.contracts.envelope import decode
    from sparktrainer.contracts.events import JobCompleted
    from sparktrainer.training.runner import CancelBook, drive_job

    job = make_job(new_id("w-hang"), "pytorch.mlp", {"input_size": 16, "output_size": 4,
                   "hidden_layers": [16], "epochs": 4, "data": {"num_samples": 80}})  # fmt: skip
    gate.arm(f"PUT /{store.bucket}/checkpoints/{job.job_id}/previous.pt".encode())
    usual, hung_before = worker.settings, worker.failures["hung"]
    worker.settings = usual.model_copy(update={"hang_floor_s": 3.0, "hang_warmup_s": 60.0})
    outcomes, sent = [], []
    run = worker.run

    async def recorded_run(*args, **kwargs):
        outcomes.append(await run(*args, **kwargs))
        worker.settings = usual  # attempt 2 under the usual floor: a loaded machine's pause
        return outcomes[-1]  # must not fail it

    async def send(record) -> None:
        sent.append(decode(record.value, record.headers))

    worker.run = recorded_run
    try:
        [end] = await drive_job(job, worker=worker, store=store, cancels=CancelBook(), send=send,
                                max_attempts=2)  # fmt: skip
    finally:
        del worker.run
        worker.settings = usual
    hung, done = outcomes
    assert hung.status == "failed" and hung.cause is FailureReason.HUNG and hung.retriable
    assert hung.error_type == "JobHung" and "SPARKTRAINER_HANG_FLOOR_S=3" in hung.reason
    completed = decode(end.value, end.headers)
    assert isinstance(completed, JobCompleted) and completed.attempt == 2, done.reason
    first = [e for e in sent if isinstance(e, CheckpointSaved) and e.attempt == 1]
    assert [c.epoch for c in first] == [1]  # the second one never landed
    [resumed] = [e for e in sent if isinstance(e, JobStarted) and e.attempt == 2]
    assert resumed.resumed_from_step == first[0].step
    assert worker.failures["hung"] == hung_before + 1
    text = await log_through_cli_and_api(settings, job.job_id, 1, capsysbinary, tmp_path)
    assert b"worker ended [hung]" in text and b"hang watchdog: no progress" in text
    assert b"most recent call first" in text
    assert b"uploads.py" in text and b"in wait" in text  # the loop waits for the held upload
    metadata = [k for k in store.list(model_prefix(job.job_id)) if k.endswith("metadata.json")]
    assert len(metadata) == 1


def _torch_import_s() -> float:
    """How long a fresh interpreter takes to import torch and torchvision here."""
    started = time.monotonic()
    subprocess.run([sys.executable, "-c", "import torch, torchvision"], check=True, timeout=120)
    return time.monotonic() - started


@pytest.mark.skipif(cage_unavailable() is not None, reason=str(cage_unavailable()))
async def test_a_worker_the_kernel_oom_kills_fails_as_oom_killed_and_its_log_is_readable(
    worker, make_job, store, settings, tmp_path, capsysbinary
) -> None:
    """Issue 18: the worker in a memory cgroup capped 256 MiB above what it holds; its data
    expands to 800 MB, so the kernel's OOM killer kills it (SIGKILL), and the trainer reads the
    kill from the cgroup: oom_killed, retriable, its log readable through the CLI and the API."""
    from sparktrainer.contracts.envelope import decode
    from sparktrainer.contracts.events import JobFailed
    from sparktrainer.training.runner import CancelBook, drive_job

    key = f"data/{new_id('oom')}.npz"
    store.put_bytes(key, npz_bomb(200_000, 1000))  # within the budget, past the cage
    data = {"source": f"s3://{store.bucket}/{key}"}
    job = make_job(new_id("w-oom"), "pytorch.mlp", {"input_size": 1000, "output_size": 2,
                   "hidden_layers": [8], "epochs": 1, "data": data})  # fmt: skip
    await worker.start()
    pid, killed_before = worker.pid, worker.failures["oom_killed"]
    assert pid is not None

    async def send(record) -> None:
        pass

    with memory_cage(pid, 256 * 2**20):
        [end] = await drive_job(job, worker=worker, store=store, cancels=CancelBook(), send=send,
                                max_attempts=1)  # fmt: skip
    failed = decode(end.value, end.headers)
    assert isinstance(failed, JobFailed) and worker.pid != pid, failed
    assert worker.failures["oom_killed"] == killed_before + 1, worker.failures
    text = await log_through_cli_and_api(settings, job.job_id, 1, capsysbinary, tmp_path)
    assert failed.cause is FailureReason.OOM_KILLED and failed.signal == signal.SIGKILL, failed
    assert "OOM killer" in failed.reason and failed.retriable, failed.reason
    assert b"worker ended [oom_killed]: training worker was killed by the kernel's OOM" in text
