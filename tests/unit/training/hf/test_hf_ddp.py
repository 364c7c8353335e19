"""The HF recipe on two DDP ranks (gloo on CPUs), through the PyTorch recipe's launcher."""

from __future__ import annotations

from typing import Any

import pytest
import torch

from sparktrainer.contracts.events import CheckpointSaved, JobProgress
from sparktrainer.training.hf.recipe import train_huggingface
from tests.unit.training.hf.hfkit import epoch_ends, started

pytestmark = pytest.mark.slow


def test_two_ranks_train_the_same_model_as_one_process(
    tiny_bert_no_dropout, hf_ctx, stored, job_id
) -> None:
    """Without dropout, 2 ranks x 8 rows average to the gradients of one 16-row batch."""
    config: dict[str, Any] = {
        "model_source": "local",
        "model_path": str(tiny_bert_no_dropout),
        "epochs": 2,
        "batch_size": 16,
        "learning_rate": 1e-3,
        "optimizer": "sgd",
        "data": {"num_samples": 80},
        "lora": {"enabled": True, "r": 4, "dropout": 0.0, "merge": True},
    }
    single_id, ddp_id = job_id("single"), job_id("ddp")
    train_huggingface(hf_ctx(single_id, config))
    ctx = hf_ctx(
        ddp_id, {**config, "distributed": {"enabled": True, "backend": "gloo", "world_size": 2}}
    )
    train_huggingface(ctx)
    assert started(ctx.events).device == "2x cpu (DDP, gloo)"
    ends = epoch_ends(ctx.events)
    assert [(e.epoch, e.step, e.total_steps) for e in ends] == [(1, 4, 8), (2, 8, 8)]
    assert [e.epoch for e in ctx.events if isinstance(e, CheckpointSaved)] == [1, 2]
    assert all(
        e.samples_per_s is None or e.samples_per_s > 0
        for e in ctx.events
        if isinstance(e, JobProgress)
    )
    single = stored(single_id, "model.safetensors")
    ddp = stored(ddp_id, "model.safetensors")
    for name, weight in single.items():
        assert torch.allclose(ddp[name], weight, atol=1e-5), name
    meta = stored(ddp_id, "metadata.json")
    single_meta = stored(single_id, "metadata.json")
    assert meta["metrics"]["val_loss"] == pytest.approx(
        single_meta["metrics"]["val_loss"], abs=1e-5
    )
