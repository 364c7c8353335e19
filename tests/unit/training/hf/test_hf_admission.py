"""A Hugging Face job is estimated where it runs, from its model's config.json, before weights."""

from __future__ import annotations

import pytest

from sparktrainer.errors import InvalidJobError
from sparktrainer.settings import Limits
from sparktrainer.training.hf.recipe import train_huggingface


def test_the_trainer_estimates_the_model_and_refuses_it_before_any_job_started(
    tiny_bert, hf_ctx, job_id
) -> None:
    config = {"model_source": "local", "model_path": str(tiny_bert), "epochs": 1,
              "data": {"num_samples": 16}}  # fmt: skip
    ctx = hf_ctx(job_id("hf-capped"), config, limits=Limits(model_parameters=1000))
    with pytest.raises(InvalidJobError, match=r"estimated model parameters .* above"):
        train_huggingface(ctx)
    assert ctx.events == []  # refused before JobStarted: nothing was built
    ctx = hf_ctx(job_id("hf-budget"), config, worker_memory_budget_bytes=1024)
    with pytest.raises(InvalidJobError, match="SPARKTRAINER_WORKER_MEMORY_BUDGET_BYTES"):
        train_huggingface(ctx)


def test_a_local_model_outside_the_roots_is_refused_where_it_runs(
    tiny_bert, hf_ctx, job_id
) -> None:
    config = {"model_source": "local", "model_path": str(tiny_bert)}
    ctx = hf_ctx(job_id("hf-outside"), config, local_model_roots="/nonexistent-root")
    with pytest.raises(InvalidJobError, match="is outside the folders this deployment"):
        train_huggingface(ctx)
