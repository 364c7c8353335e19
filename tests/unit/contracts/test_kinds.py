"""The job-kind registry: one entry per kind, and every cap a job can hit, with its message."""

from __future__ import annotations

import copy
import importlib
from typing import Any, get_args

import pytest

from sparktrainer.contracts import kinds
from sparktrainer.contracts.jobspec import FRAMEWORKS_RUN
from sparktrainer.settings import Limits
from sparktrainer.validation.checks import validate_job
from tests import guide

MLP: dict[str, Any] = {
    "type": "train",
    "framework": "pytorch",
    "config": {"architecture": "custom", "input_size": 64, "output_size": 10},
}


def with_config(job: dict[str, Any], **config: Any) -> dict[str, Any]:
    out = copy.deepcopy(job)
    out["config"].update(config)
    return out


def errors_of(job: dict[str, Any], limits: Limits | None = None) -> list[str]:
    return validate_job(job, None, limits).errors


def test_each_kind_is_selected_by_one_field_value_of_its_framework() -> None:
    seen = {(k.framework, *k.selector) for k in kinds.KINDS.values()}
    assert len(seen) == len(kinds.KINDS)
    assert {k.framework for k in kinds.KINDS.values()} == set(FRAMEWORKS_RUN)
    for kind in kinds.KINDS.values():
        assert kind.selector[0] in kinds.SELECTING_FIELDS[kind.framework]
        assert kind.config.kind == kind.name


def test_every_recipe_reference_imports_a_callable() -> None:
    for kind in kinds.KINDS.values():
        module, _, function = kind.recipe.partition(":")
        assert callable(getattr(importlib.import_module(module), function)), kind.name


def test_the_config_union_is_every_kinds_config_class() -> None:
    assert set(get_args(kinds.JobConfig)) == {k.config for k in kinds.KINDS.values()}


@pytest.mark.parametrize("job", guide.complete_jobs(), ids=lambda j: j.get("name") or j["type"])
def test_every_guide_job_selects_a_kind(job: dict[str, Any]) -> None:
    result = validate_job(job, None)
    assert result.kind is not None or any("model_id" in e for e in result.errors), result.errors


# -- the hostile jobs of the hostile-input issue, each refused with a message that says why ----

HOSTILE: list[tuple[str, dict[str, Any], str]] = [
    ("giant MLP input", with_config(MLP, input_size=10**12), "config.input_size 1e+12 is above"),
    (
        "giant MLP, every field within its cap",
        with_config(MLP, input_size=9_000_000, hidden_layers=[60_000, 60_000]),
        "estimated model parameters 5.4",
    ),
    (
        "giant synthetic dataset",
        with_config(MLP, input_size=100_000, data={"num_samples": 9_000_000}),
        "config.data: the training data is estimated at 3.3 TiB",
    ),
    (
        "ResNet channel counts",
        {
            "type": "train",
            "framework": "pytorch",
            "config": {"architecture": "resnet", "num_classes": 10, "channels": [10**9] * 4},
        },
        "config.channels (widest) 1e+09 is above",
    ),
    (
        "torchvision input shape",
        {
            "type": "finetune",
            "framework": "pytorch",
            "config": {
                "model_source": "torchvision",
                "model_name": "resnet18",
                "num_classes": 2,
                "input_shape": [3, 100_000, 100_000],
            },
        },
        "config.input_shape[1] (height) 100000 is above",
    ),
    ("seed beyond 2**32", with_config(MLP, seed=2**70), "config.seed 1.181e+21 is above"),
    ("negative seed", with_config(MLP, seed=-1), "config.seed"),
    (
        "a thousand DDP processes",
        with_config(MLP, distributed={"enabled": True, "world_size": 1000}),
        "config.distributed.world_size 1000 is above this deployment's limit of 8",
    ),
    (
        "memory for the batch",
        with_config(MLP, input_size=4_000_000, hidden_layers=[256], batch_size=4096),
        "config: the job is estimated to need",
    ),
    (
        "LoRA rank",
        {
            "type": "finetune",
            "framework": "huggingface",
            "config": {"model_name": "bert-base-uncased", "lora": {"enabled": True, "r": 10**6}},
        },
        "config.lora.r 1e+06 is above",
    ),
    (
        "nesting",
        with_config(MLP, data={"x": [[[[[[[[[[[1]]]]]]]]]]]}),
        "nesting depth 11 is above the limit of 10 (SPARKTRAINER_MAX_NESTING_DEPTH)",
    ),
    ("long string", with_config(MLP, activation="r" * 5000), "text of 5000 characters"),
    ("long list", with_config(MLP, hidden_layers=[1] * 2000), "a list of 2000 items"),
]


@pytest.mark.parametrize(("job", "needle"), [h[1:] for h in HOSTILE], ids=[h[0] for h in HOSTILE])
def test_hostile_job_is_refused_naming_the_field_and_limit(
    job: dict[str, Any], needle: str
) -> None:
    errors = errors_of(job)
    assert any(needle in e for e in errors), errors


def test_memory_message_names_the_estimate_limit_and_setting() -> None:
    job = with_config(MLP, input_size=4_000_000, hidden_layers=[256], batch_size=4096)
    message = next(e for e in errors_of(job) if "estimated to need" in e)
    assert "activations" in message and "for a batch of 4096" in message
    assert (
        "above this deployment's limit of 32.0 GiB (SPARKTRAINER_MAX_JOB_MEMORY_BYTES)" in message
    )


def test_caps_follow_the_settings() -> None:
    job = with_config(MLP, hidden_layers=[512, 256])
    assert errors_of(job) == []
    tight = Limits(job_memory_bytes=100_000, hidden_units=300)
    errors = errors_of(job, tight)
    assert any("config.hidden_layers (widest) 512 is above" in e for e in errors), errors
    assert any("SPARKTRAINER_MAX_HIDDEN_UNITS" in e for e in errors), errors
    assert not any("estimated to need" in e for e in errors)  # not estimated beyond a cap
    assert any(
        "estimated to need" in e for e in errors_of(with_config(MLP, hidden_layers=[8]), tight)
    )


def test_a_valid_job_carries_its_estimate() -> None:
    result = validate_job(guide.by_name("Initial Model Training"), None)
    assert result.valid and result.estimate is not None
    assert result.estimate.parameters == 784 * 512 + 512 + 512 * 256 + 256 + 256 * 128 + 128 + 1290
    assert result.estimate.processes == 1


def test_hub_models_are_estimated_by_the_trainer() -> None:
    job = guide.complete_jobs()[2]  # bert-base-uncased from the hub
    result = validate_job(job, None)
    assert result.valid and result.estimate is None
    assert any(
        "cannot be estimated before its model's config is read" in w for w in result.warnings
    )
