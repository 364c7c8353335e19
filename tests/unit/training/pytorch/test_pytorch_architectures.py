"""The architecture registry: builds, heads, freezing, config.json round trips."""

from __future__ import annotations

import pytest
import torch

from sparktrainer.contracts.jobspec import MLPConfig, ResNetConfig, TorchvisionConfig
from sparktrainer.errors import TrainingError
from sparktrainer.training.loop.training_loop import keep_frozen_norms_in_eval
from sparktrainer.training.pytorch import architectures
from sparktrainer.training.pytorch.model_io import CONFIG_FORMAT, ModelSpec

TV_HEADS = {
    "resnet18": "fc",
    "resnet50": "fc",
    "vgg16": "classifier.6",
    "densenet121": "classifier",
}


def spec_for(config) -> ModelSpec:
    arch = architectures.for_config(config)
    return ModelSpec(arch.name, arch.params_from_config(config))


@pytest.mark.parametrize(
    "activation", ["relu", "gelu", "tanh", "leaky_relu", "sigmoid", "silu", "elu"]
)
def test_mlp_builds_with_every_activation(activation: str) -> None:
    spec = spec_for(
        MLPConfig(
            input_size=12, output_size=3, hidden_layers=[8, 4], activation=activation, dropout=0.1
        )
    )
    model = spec.build()
    assert model(torch.randn(5, 12)).shape == (5, 3)
    assert isinstance(model.get_submodule("head"), torch.nn.Linear)


def test_resnet_builds_for_its_input_shape() -> None:
    spec = spec_for(
        ResNetConfig(num_classes=4, num_blocks=[1, 2], channels=[8, 16], input_shape=(1, 12, 12))
    )
    assert spec.build()(torch.randn(2, 1, 12, 12)).shape == (2, 4)


@pytest.mark.parametrize("name", ["resnet18", "resnet50", "vgg16", "densenet121"])
def test_torchvision_heads_are_their_own(name: str) -> None:
    spec = spec_for(
        TorchvisionConfig(model_name=name, num_classes=7, pretrained=False, input_shape=(3, 32, 32))
    )
    model = spec.build()
    head = model.get_submodule(TV_HEADS[name])
    assert isinstance(head, torch.nn.Linear) and head.out_features == 7
    params = spec.arch.replace_head(model, spec.params, 3)
    assert params["num_classes"] == 3
    assert model.get_submodule(TV_HEADS[name]).out_features == 3
    spec.arch.freeze(model, params)
    trainable = {n for n, p in model.named_parameters() if p.requires_grad}
    assert trainable == {f"{TV_HEADS[name]}.weight", f"{TV_HEADS[name]}.bias"}
    with torch.no_grad():
        assert model.eval()(torch.randn(1, 3, 32, 32)).shape == (1, 3)


def test_mlp_freeze_keeps_its_last_linear_trainable() -> None:
    spec = spec_for(MLPConfig(input_size=4, output_size=2, hidden_layers=[3, 3]))
    model = spec.build()
    spec.arch.freeze(model, spec.params)
    assert [n for n, p in model.named_parameters() if p.requires_grad] == [
        "head.weight",
        "head.bias",
    ]


def test_torchvision_needs_three_channels() -> None:
    spec = spec_for(
        TorchvisionConfig(
            model_name="resnet18", num_classes=2, pretrained=False, input_shape=(1, 32, 32)
        )
    )
    with pytest.raises(TrainingError, match="3-channel"):
        spec.build()


def test_config_json_round_trips_every_builder_argument() -> None:
    spec = spec_for(
        MLPConfig(
            input_size=64, output_size=10, hidden_layers=[32], activation="gelu", dropout=0.25
        )
    )
    doc = spec.config_json()
    assert doc == {
        "format": CONFIG_FORMAT,
        "builder": "mlp",
        "params": {
            "input_size": 64,
            "output_size": 10,
            "hidden_layers": [32],
            "activation": "gelu",
            "dropout": 0.25,
        },
        "num_classes": 10,
        "input_shape": [64],
        "task": "classification",
    }
    again = ModelSpec.from_config_json(doc, "m1")
    assert again == spec
    resnet = spec_for(
        ResNetConfig(num_classes=3, num_blocks=[1], channels=[4], input_shape=(3, 8, 8))
    ).config_json()
    assert resnet["params"]["input_shape"] == [3, 8, 8] and resnet["input_shape"] == [3, 8, 8]


def test_foreign_config_json_is_refused() -> None:
    with pytest.raises(TrainingError, match="not a SparkTrainer PyTorch model"):
        ModelSpec.from_config_json({"architecture": "custom"}, "other")
    with pytest.raises(TrainingError, match="unknown architecture builder"):
        ModelSpec("transformer", {}).build()


def test_frozen_batch_norm_statistics_do_not_drift() -> None:
    spec = spec_for(
        ResNetConfig(num_classes=2, num_blocks=[1], channels=[4], input_shape=(1, 8, 8))
    )
    model = spec.build()
    spec.arch.freeze(model, spec.params)
    before = {k: v.clone() for k, v in model.state_dict().items()}
    model.train()
    keep_frozen_norms_in_eval(model)
    model(torch.randn(8, 1, 8, 8))
    assert all(torch.equal(before[k], v) for k, v in model.state_dict().items())
