"""The resource estimates (contracts/estimates.py) against real models built with torch.

Parameter counts must be exact for the architectures we build; activation estimates must not
be below what autograd really keeps for the backward pass, nor wildly above it.
"""

from __future__ import annotations

from typing import Any

import pytest
import torch
import torchvision
from torch import nn
from torch.autograd.graph import saved_tensors_hooks

from sparktrainer.contracts import estimates as est
from sparktrainer.training.pytorch.architectures import MLP, ResNet


def saved_bytes_per_sample(model: nn.Module, x: torch.Tensor, **kwargs: Any) -> float:
    """What autograd keeps for backward (parameters excluded), per sample of ``x``."""
    params = {p.data_ptr() for p in model.parameters()}
    seen: dict[tuple[int, int, torch.dtype], int] = {}

    def pack(t: torch.Tensor) -> torch.Tensor:
        if t.data_ptr() not in params:
            seen[(t.data_ptr(), t.numel(), t.dtype)] = t.numel() * t.element_size()
        return t

    with saved_tensors_hooks(pack, lambda t: t):
        model(x, **kwargs)
    return sum(seen.values()) / x.shape[0]


def n_params(model: nn.Module) -> int:
    return sum(p.numel() for p in model.parameters())


@pytest.mark.parametrize("dropout", [0.0, 0.2])
def test_mlp_estimate(dropout: float) -> None:
    model = MLP(64, 10, [128, 32], "relu", dropout).train()
    size = est.mlp_size(64, [128, 32], 10, dropout)
    assert size.parameters == n_params(model)
    measured = saved_bytes_per_sample(model, torch.randn(8, 64))
    assert measured <= size.activation_bytes_per_sample <= 3 * measured


@pytest.mark.parametrize(
    ("blocks", "channels", "shape"),
    [([2, 2], [16, 32], [3, 32, 32]), ([1, 1, 1], [8, 8, 16], [1, 20, 28]), ([2], [4], [3, 9, 9])],
)
def test_resnet_estimate(blocks: list[int], channels: list[int], shape: list[int]) -> None:
    model = ResNet(7, blocks, channels, tuple(shape)).train()
    size = est.resnet_size(7, blocks, channels, shape)
    assert size.parameters == n_params(model)
    measured = saved_bytes_per_sample(model, torch.randn(4, *shape))
    assert measured <= size.activation_bytes_per_sample <= 2 * measured


@pytest.mark.parametrize("name", sorted(est.TORCHVISION))
def test_torchvision_estimate(name: str) -> None:
    model = torchvision.models.get_model(name, weights=None, num_classes=5).train()
    size = est.torchvision_size(name, 5, [3, 64, 64])
    assert size.parameters == n_params(model)
    measured = saved_bytes_per_sample(model, torch.randn(2, 3, 64, 64))
    assert 0.9 * measured <= size.activation_bytes_per_sample <= 1.5 * measured


@pytest.mark.parametrize("family", ["bert", "llama"])
def test_transformer_estimate(family: str) -> None:
    from transformers import AutoConfig, AutoModelForSequenceClassification

    common = {
        "hidden_size": 64,
        "num_hidden_layers": 2,
        "num_attention_heads": 4,
        "intermediate_size": 128,
        "vocab_size": 1000,
        "max_position_embeddings": 64,
    }
    config = AutoConfig.for_model(family, **common, num_labels=3, pad_token_id=0)
    model = AutoModelForSequenceClassification.from_config(config, attn_implementation="eager")
    size = est.transformer_size(config.to_dict(), 32, 3)
    assert 0.9 * n_params(model) <= size.parameters <= 1.15 * n_params(model)
    ids = torch.randint(0, 1000, (2, 32))
    measured = saved_bytes_per_sample(model.train(), ids)
    assert measured <= size.activation_bytes_per_sample <= 4 * measured


def test_job_memory_adds_up() -> None:
    size = est.ModelSize(parameters=1000, trainable=100, activation_bytes_per_sample=10)
    e = est.job_estimate(
        size, micro_batch=4, optimizer="adam", precision="float32", data_bytes=7, processes=2
    )
    assert (e.weight_bytes, e.gradient_bytes, e.optimizer_bytes) == (4000, 400, 800)
    assert e.activation_bytes == 40
    assert e.memory_bytes == 2 * (2 * 4000 + 400 + 800 + 40) + 7
