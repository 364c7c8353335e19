"""The PyTorch recipe in-process on the real S3 server: it learns, saves, resumes, refuses."""

from __future__ import annotations

import io

import numpy as np
import pytest
import torch

from sparktrainer.contracts.events import CheckpointSaved, JobProgress, JobStarted
from sparktrainer.errors import JobCancelledError, ModelUnavailableError, TrainingError
from sparktrainer.training.recipes import run_recipe_job

DIGITS_MLP = {
    "input_size": 64,
    "output_size": 10,
    "hidden_layers": [64],
    "epochs": 3,
    "batch_size": 32,
    "data": {"source": "digits"},
}
DIGITS_RESNET = {
    "num_classes": 10,
    "num_blocks": [1, 1],
    "channels": [8, 16],
    "input_shape": [1, 8, 8],
    "epochs": 2,
    "learning_rate": 0.003,
    "data": {"source": "digits"},
}


def of(ctx, kind):
    return [e for e in ctx.events if isinstance(e, kind)]


def assert_learned(registered, min_val_accuracy: float = 0.35) -> None:
    """Digits has 10 classes: chance is 0.1 and the untrained loss is ln(10) = 2.3."""
    assert registered.metrics["val_accuracy"] > min_val_accuracy
    assert registered.metrics["loss"] < 1.5


def test_mlp_learns_digits_and_publishes_everything(make_ctx, s3, stored, job_id) -> None:
    mlp = job_id("mlp-digits")
    ctx = make_ctx(mlp, "pytorch.mlp", DIGITS_MLP)
    registered = run_recipe_job(ctx)
    history = stored(mlp, "metadata.json")["history"]
    assert history[-1]["loss"] < history[0]["loss"]
    assert_learned(registered)
    started = ctx.events[0]
    assert isinstance(started, JobStarted) and started.device == "cpu"
    assert started.total_epochs == 3 and started.resumed_from_epoch is None
    progress = of(ctx, JobProgress)
    assert progress[-1].epoch == 3 and progress[-1].step == progress[-1].total_steps
    assert progress[-1].val_accuracy is not None and progress[-1].samples_per_s
    assert [c.epoch for c in of(ctx, CheckpointSaved)] == [1, 2, 3]
    model = stored(mlp, "model.pth")
    assert {"model_state_dict", "optimizer_state_dict", "epoch", "metrics"} <= set(model)
    assert model["model_state_dict"]["head.weight"].shape == (10, 64)
    assert stored(mlp, "best_model.pth")["epoch"] >= 1
    assert stored(mlp, "config.json")["format"] == "sparktrainer.pytorch.v1"
    assert "torch" in stored(mlp, "env.json")
    mine = [k for k in s3.puts if k.startswith(f"models/{mlp}/")]
    assert mine[-1] == f"models/{mlp}/metadata.json" and len(mine) == 6
    assert sum(k.startswith(f"models/{mlp}/logs/events.out.tfevents.") for k in mine) == 1
    assert not list(s3.list(f"checkpoints/{mlp}/"))


def test_resnet_learns_digits(make_ctx, job_id) -> None:
    assert_learned(
        run_recipe_job(make_ctx(job_id("resnet-digits"), "pytorch.resnet", DIGITS_RESNET))
    )


def test_resnet18_learns_digits_from_scratch(make_ctx, job_id) -> None:
    # resnet18 costs ~11M multiply-adds a sample at any input size: one epoch keeps this test to
    # seconds. Batches of 32 give its batch-norm statistics ~45 steps to follow the weights: with
    # 64 (~22 steps) the running statistics lagged so far that val accuracy was 0.22 while the
    # training accuracy was 0.74.
    config = {
        "model_name": "resnet18",
        "num_classes": 10,
        "pretrained": False,
        "freeze_layers": False,
        "input_shape": [3, 8, 8],
        "epochs": 1,
        "batch_size": 32,
        "learning_rate": 0.002,
        "data": {"source": "digits"},
    }
    assert_learned(run_recipe_job(make_ctx(job_id("tv-digits"), "pytorch.torchvision", config)))


def test_progress_is_rate_limited_plus_each_epochs_last_step_and_end(make_ctx, job_id) -> None:
    config = {**DIGITS_MLP, "epochs": 2}
    ctx = make_ctx(job_id("mlp-quiet"), "pytorch.mlp", config, progress_every_s=3600.0)
    run_recipe_job(ctx)
    reports = of(ctx, JobProgress)
    assert [(p.epoch, p.phase) for p in reports] == [
        (1, "step"),  # the first report is always due
        (1, "step"),  # the epoch's last step: every training curve reaches it
        (1, "epoch"),
        (2, "step"),
        (2, "epoch"),
    ]
    per_epoch = reports[2].total_steps // 2
    assert [p.step for p in reports] == [1, per_epoch, per_epoch, 2 * per_epoch, 2 * per_epoch]


def test_a_registered_model_is_not_trained_twice(make_ctx, job_id) -> None:
    first = run_recipe_job(make_ctx(job_id("once"), "pytorch.mlp", {**DIGITS_MLP, "epochs": 1}))
    again_ctx = make_ctx(job_id("once"), "pytorch.mlp", {**DIGITS_MLP, "epochs": 1}, attempt=2)
    assert run_recipe_job(again_ctx) == first
    assert again_ctx.events == []


def test_nan_loss_fails_with_a_clear_reason(make_ctx, s3, job_id) -> None:
    x = np.random.rand(64, 4).astype(np.float32)
    x[5, 1] = np.nan
    buf = io.BytesIO()
    np.savez(buf, X=x, y=np.arange(64) % 2)
    key = f"data/{job_id('nan')}.npz"
    s3.put_bytes(key, buf.getvalue())
    config = {
        "input_size": 4,
        "output_size": 2,
        "hidden_layers": [8],
        "epochs": 1,
        "data": {"source": f"s3://{s3.bucket}/{key}"},
    }
    with pytest.raises(TrainingError, match="training loss became nan at epoch 1"):
        run_recipe_job(make_ctx(job_id("nan"), "pytorch.mlp", config))


def test_unknown_parent_fails_before_training(make_ctx, job_id) -> None:
    config = {"model_id": job_id("nope")}
    ctx = make_ctx(job_id("orphan"), "pytorch.registered", config, job_type="finetune")
    with pytest.raises(ModelUnavailableError, match=f"model '{job_id('nope')}' is not registered"):
        run_recipe_job(ctx)
    assert ctx.events == []


def test_float16_on_the_cpu_trains_in_float32_with_a_warning(make_ctx, stored, job_id) -> None:
    config = {
        "input_size": 8,
        "output_size": 3,
        "hidden_layers": [16],
        "epochs": 1,
        "data": {"num_samples": 64},
    }
    fp16, bf16 = job_id("fp16"), job_id("bf16")
    run_recipe_job(make_ctx(fp16, "pytorch.mlp", {**config, "precision": "float16"}))
    meta = stored(fp16, "metadata.json")
    assert meta["precision"] == "float32" and "float16 needs a CUDA device" in meta["warnings"][0]
    run_recipe_job(make_ctx(bf16, "pytorch.mlp", {**config, "precision": "bfloat16"}))
    assert stored(bf16, "metadata.json")["precision"] == "bfloat16"


def test_gradient_accumulation_equals_the_bigger_batch(make_ctx, stored, job_id) -> None:
    base = {
        "input_size": 8,
        "output_size": 3,
        "hidden_layers": [16],
        "epochs": 2,
        "optimizer": "sgd",
        "learning_rate": 0.05,
        "data": {"num_samples": 128},
    }
    b32, b16x2 = job_id("b32"), job_id("b16x2")
    run_recipe_job(make_ctx(b32, "pytorch.mlp", {**base, "batch_size": 32}))
    accumulated = {**base, "batch_size": 16, "gradient_accumulation_steps": 2}
    run_recipe_job(make_ctx(b16x2, "pytorch.mlp", accumulated))
    one, two = (stored(m, "model.pth")["model_state_dict"] for m in (b32, b16x2))
    for name in one:
        torch.testing.assert_close(one[name], two[name], atol=1e-5, rtol=1e-4)


@pytest.mark.parametrize("every_steps", [0, 7])
def test_resume_after_a_stop_ends_where_an_unbroken_run_ends(
    make_ctx, stored, job_id, every_steps: int
) -> None:
    config = {
        **DIGITS_MLP,
        "epochs": 4,
        "dropout": 0.2,
        "scheduler": "cosine",
        "checkpoint_every_steps": every_steps,
    }
    unbroken, job = job_id("unbroken"), job_id(f"broken-{every_steps}")
    run_recipe_job(make_ctx(unbroken, "pytorch.mlp", config))
    first = make_ctx(job, "pytorch.mlp", config)
    target = 2 if every_steps == 0 else 1  # epoch 2 boundary / a mid-epoch step checkpoint
    emit = first.emit

    def stop_after_checkpoint(event) -> None:
        emit(event)
        if isinstance(event, CheckpointSaved) and event.step >= target * (
            45 if every_steps == 0 else every_steps
        ):
            first.stop.set("cancel", "test stops here")

    first.emit = stop_after_checkpoint
    with pytest.raises(JobCancelledError):
        run_recipe_job(first)
    second = make_ctx(job, "pytorch.mlp", config, attempt=2)
    run_recipe_job(second)
    resumed = second.events[0].resumed_from_epoch
    assert resumed is not None and resumed >= (2 if every_steps == 0 else 0)
    assert second.events[1].step > 1  # it went on from the checkpoint's step
    want = stored(unbroken, "model.pth")["model_state_dict"]
    got = stored(job, "model.pth")["model_state_dict"]
    for name in want:
        torch.testing.assert_close(got[name], want[name], atol=1e-6, rtol=1e-5)
