"""Checkpoint on stop and atomic checkpoints, in-process on the real S3 server (issue 18
items 1 and 4).

A preempt on the job's stop flag (what the worker sets on SIGTERM) checkpoints the last
optimizer step before the next batch and raises JobPreemptedError naming that step; the next
attempt resumes there and ends exactly where an unbroken run ends. A checkpoint whose bytes are
not the ones recorded (half-written, corrupted) is skipped for the one before it.
"""

from __future__ import annotations

import pytest
import torch

from sparktrainer.contracts.events import CheckpointSaved, JobProgress, JobStarted
from sparktrainer.errors import JobCancelledError, JobPreemptedError
from sparktrainer.training.job.stopping import StopCheck, StopFlag
from sparktrainer.training.recipes import run_recipe_job

MLP = {
    "input_size": 16,
    "output_size": 4,
    "hidden_layers": [32],
    "epochs": 2,
    "batch_size": 16,
    "dropout": 0.2,
    "scheduler": "cosine",
    "data": {"source": "synthetic", "num_samples": 320},
}
STOP_AT = 21  # epoch 2 of 16 steps (256 samples / 16): mid-epoch, no periodic checkpoint there


def test_a_preempt_on_the_flag_raises_with_no_step_before_the_loop() -> None:
    flag = StopFlag()
    flag.set("preempt", "the trainer is stopping (SIGTERM)")
    with pytest.raises(JobPreemptedError, match="SIGTERM") as stopped:
        StopCheck(flag, limit_s=0.0).check()
    assert stopped.value.step is None and stopped.value.retriable


def test_a_preempted_job_resumes_at_its_step_and_ends_like_an_unbroken_run(
    make_ctx, stored, job_id
) -> None:
    unbroken, job = job_id("unbroken-stop"), job_id("preempted")
    run_recipe_job(make_ctx(unbroken, "pytorch.mlp", MLP))
    first = make_ctx(job, "pytorch.mlp", MLP)
    emit = first.emit

    def preempt_at_step(event) -> None:
        emit(event)
        if isinstance(event, JobProgress) and event.step == STOP_AT:
            first.stop.set("preempt", "the trainer is stopping (SIGTERM)")

    first.emit = preempt_at_step
    with pytest.raises(JobPreemptedError) as stopped:
        run_recipe_job(first)
    assert stopped.value.step == STOP_AT
    saved = [e for e in first.events if isinstance(e, CheckpointSaved)]
    assert saved[-1].step == STOP_AT and saved[-1].epoch == 1  # 1 epoch done, mid-epoch 2
    assert max(e.step for e in first.events if isinstance(e, JobProgress)) == STOP_AT
    second = make_ctx(job, "pytorch.mlp", MLP, attempt=2)
    run_recipe_job(second)
    [started] = [e for e in second.events if isinstance(e, JobStarted)]
    assert started.resumed_from_step == STOP_AT
    steps = [e.step for e in second.events if isinstance(e, JobProgress)]
    assert steps[0] == STOP_AT + 1 and steps[-1] == 32
    want = stored(unbroken, "model.pth")["model_state_dict"]
    got = stored(job, "model.pth")["model_state_dict"]
    for name in want:
        torch.testing.assert_close(got[name], want[name], atol=1e-6, rtol=1e-5)


def test_a_half_written_checkpoint_is_skipped_for_the_one_before(
    make_ctx, stored, s3, job_id, tmp_path
) -> None:
    config = {**MLP, "checkpoint_every_steps": 5}
    unbroken, job = job_id("unbroken-ckpt"), job_id("half-written")
    run_recipe_job(make_ctx(unbroken, "pytorch.mlp", config))
    first = make_ctx(job, "pytorch.mlp", config)
    emit = first.emit

    def stop_after_two(event) -> None:
        emit(event)
        if isinstance(event, CheckpointSaved) and event.step >= 10:
            first.stop.set("cancel", "stop after two checkpoints")

    first.emit = stop_after_two
    with pytest.raises(JobCancelledError):
        run_recipe_job(first)
    latest, previous = [e for e in first.events if isinstance(e, CheckpointSaved)][-1:-3:-1]
    local = tmp_path / "latest.pt"
    s3.get_file(latest.key, local)
    local.write_bytes(local.read_bytes()[: local.stat().st_size // 2])  # cut off halfway
    s3.put_file(latest.key, local, sha256=latest.sha256)  # the hash of the whole file
    second = make_ctx(job, "pytorch.mlp", config, attempt=2)
    run_recipe_job(second)
    [started] = [e for e in second.events if isinstance(e, JobStarted)]
    assert started.resumed_from_step == previous.step < latest.step
    [skipped] = started.skipped_checkpoints
    assert skipped.startswith(latest.key) and "recorded when it was uploaded" in skipped
    want = stored(unbroken, "model.pth")["model_state_dict"]
    got = stored(job, "model.pth")["model_state_dict"]
    for name in want:
        torch.testing.assert_close(got[name], want[name], atol=1e-6, rtol=1e-5)


def test_a_preempt_past_its_grace_is_killed_and_resumes_from_the_last_periodic_one() -> None:
    from sparktrainer.settings import Settings
    from sparktrainer.training.worker.warm import WarmWorker, _StopAsked

    worker = WarmWorker(Settings(preempt_grace_s=3.0, worker_stop_grace_s=9.0))
    preempt = _StopAsked("preempt", "the trainer is stopping (SIGTERM)", at=0.0)
    assert worker._grace_s(preempt) == 3.0
    assert worker._grace_s(_StopAsked("cancel", "asked", at=0.0)) == 9.0
    killed = worker._stopped_by_force(preempt)
    assert killed.status == "preempted" and killed.retriable and killed.checkpoint_step is None
    assert "did not stop within 3 s" in killed.reason
    assert "resumes from its last periodic checkpoint" in killed.reason
