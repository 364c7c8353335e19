"""The one architecture registry: builder name -> how to build it, find its head, freeze it.

Every PyTorch model SparkTrainer trains is rebuilt from ``(builder, params)`` (stored in
the model's ``config.json``), so a new architecture is one ``Architecture`` entry here.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch
from torch import nn

from sparktrainer.contracts.jobspec import (
    MLPConfig,
    ResNetConfig,
    TorchvisionConfig,
    TrainingOptions,
)
from sparktrainer.errors import TrainingError
from sparktrainer.training.pytorch import pretrained

Params = dict[str, Any]

ACTIVATIONS: dict[str, type[nn.Module]] = {
    "relu": nn.ReLU,
    "gelu": nn.GELU,
    "tanh": nn.Tanh,
    "leaky_relu": nn.LeakyReLU,
    "sigmoid": nn.Sigmoid,
    "silu": nn.SiLU,
    "elu": nn.ELU,
}
TORCHVISION_HEADS = {
    "resnet18": "fc",
    "resnet50": "fc",
    "vgg16": "classifier.6",
    "densenet121": "classifier",
}


class MLP(nn.Module):
    """The guide's custom fully-connected network: hidden Linear layers, then a Linear head."""

    def __init__(
        self,
        input_size: int,
        output_size: int,
        hidden_layers: list[int],
        activation: str = "relu",
        dropout: float = 0.0,
    ) -> None:
        super().__init__()
        layers: list[nn.Module] = []
        width = input_size
        for units in hidden_layers:
            layers += [nn.Linear(width, units), ACTIVATIONS[activation]()]
            if dropout > 0:
                layers.append(nn.Dropout(dropout))
            width = units
        self.features = nn.Sequential(*layers)
        self.head = nn.Linear(width, output_size)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.head(self.features(x.flatten(1)))


class BasicBlock(nn.Module):
    """Two 3x3 convolutions with a residual shortcut (projected when the shape changes)."""

    def __init__(self, in_ch: int, out_ch: int, stride: int) -> None:
        super().__init__()
        self.conv1 = nn.Conv2d(in_ch, out_ch, 3, stride, 1, bias=False)
        self.bn1 = nn.BatchNorm2d(out_ch)
        self.conv2 = nn.Conv2d(out_ch, out_ch, 3, 1, 1, bias=False)
        self.bn2 = nn.BatchNorm2d(out_ch)
        self.shortcut: nn.Module = nn.Identity()
        if stride != 1 or in_ch != out_ch:
            self.shortcut = nn.Sequential(
                nn.Conv2d(in_ch, out_ch, 1, stride, bias=False), nn.BatchNorm2d(out_ch)
            )

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        out = torch.relu(self.bn1(self.conv1(x)))
        return torch.relu(self.bn2(self.conv2(out)) + self.shortcut(x))


class ResNet(nn.Module):
    """The guide's custom ResNet: a 3x3 stem, one stage per channel count, then ``fc``."""

    def __init__(
        self,
        num_classes: int,
        num_blocks: list[int],
        channels: list[int],
        input_shape: tuple[int, int, int] | list[int] = (3, 32, 32),
    ) -> None:
        super().__init__()
        self.stem = nn.Sequential(
            nn.Conv2d(input_shape[0], channels[0], 3, 1, 1, bias=False),
            nn.BatchNorm2d(channels[0]),
            nn.ReLU(inplace=True),
        )
        stages: list[nn.Module] = []
        in_ch = channels[0]
        for i, (blocks, out_ch) in enumerate(zip(num_blocks, channels, strict=True)):
            stride = 1 if i == 0 else 2
            stage = [
                BasicBlock(in_ch if b == 0 else out_ch, out_ch, stride if b == 0 else 1)
                for b in range(blocks)
            ]
            stages.append(nn.Sequential(*stage))
            in_ch = out_ch
        self.stages = nn.Sequential(*stages)
        self.pool = nn.AdaptiveAvgPool2d(1)
        self.fc = nn.Linear(in_ch, num_classes)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.fc(self.pool(self.stages(self.stem(x))).flatten(1))


def _build_mlp(p: Params) -> nn.Module:
    return MLP(
        p["input_size"], p["output_size"], list(p["hidden_layers"]), p["activation"], p["dropout"]
    )


def _build_resnet(p: Params) -> nn.Module:
    return ResNet(
        p["num_classes"], list(p["num_blocks"]), list(p["channels"]), tuple(p["input_shape"])
    )


def _build_torchvision(p: Params) -> nn.Module:
    import torchvision

    if p["input_shape"][0] != 3:
        raise TrainingError(
            f"torchvision {p['model_name']} takes 3-channel images but input_shape is "
            f"{list(p['input_shape'])}: set input_shape to [3, H, W] (1-channel data is replicated)"
        )
    return torchvision.models.get_model(p["model_name"], weights=None, num_classes=p["num_classes"])


@dataclass(frozen=True)
class Architecture:
    """One registry entry: build from params, where the head is, how params name the classes."""

    name: str
    config_kind: str
    build: Callable[[Params], nn.Module]
    head_path: Callable[[Params], str]
    classes_param: str
    params_from_config: Callable[[Any], Params]
    input_shape: Callable[[Params], tuple[int, ...]]

    def num_classes(self, params: Params) -> int:
        """How many outputs the head has."""
        return int(params[self.classes_param])

    def replace_head(self, model: nn.Module, params: Params, num_classes: int) -> Params:
        """Swap the head for a fresh Linear with ``num_classes`` outputs; returns the new params."""
        path = self.head_path(params)
        old = model.get_submodule(path)
        if not isinstance(old, nn.Linear):
            raise TrainingError(f"{self.name} head '{path}' is {type(old).__name__}, not Linear")
        model.set_submodule(path, nn.Linear(old.in_features, num_classes))
        return {**params, self.classes_param: num_classes}

    def freeze(self, model: nn.Module, params: Params) -> None:
        """Freeze every parameter except the head's."""
        model.requires_grad_(False)
        model.get_submodule(self.head_path(params)).requires_grad_(True)


def _mlp_params(c: MLPConfig) -> Params:
    return {
        "input_size": c.input_size,
        "output_size": c.output_size,
        "hidden_layers": list(c.hidden_layers),
        "activation": c.activation,
        "dropout": float(c.dropout),
    }


def _resnet_params(c: ResNetConfig) -> Params:
    return {
        "num_classes": c.num_classes,
        "num_blocks": list(c.num_blocks),
        "channels": list(c.channels),
        "input_shape": list(c.input_shape),
    }


def _torchvision_params(c: TorchvisionConfig) -> Params:
    return {
        "model_name": c.model_name,
        "num_classes": c.num_classes,
        "input_shape": list(c.input_shape),
    }


REGISTRY: dict[str, Architecture] = {
    "mlp": Architecture(
        "mlp",
        MLPConfig.kind,
        _build_mlp,
        lambda p: "head",
        "output_size",
        _mlp_params,
        lambda p: (int(p["input_size"]),),
    ),
    "resnet": Architecture(
        "resnet",
        ResNetConfig.kind,
        _build_resnet,
        lambda p: "fc",
        "num_classes",
        _resnet_params,
        lambda p: tuple(int(v) for v in p["input_shape"]),
    ),
    "torchvision": Architecture(
        "torchvision",
        TorchvisionConfig.kind,
        _build_torchvision,
        lambda p: TORCHVISION_HEADS[p["model_name"]],
        "num_classes",
        _torchvision_params,
        lambda p: tuple(int(v) for v in p["input_shape"]),
    ),
}


def get(builder: str) -> Architecture:
    """The registry entry for a builder name, or a clear error."""
    try:
        return REGISTRY[builder]
    except KeyError as e:
        raise TrainingError(
            f"unknown architecture builder '{builder}': known are {sorted(REGISTRY)}"
        ) from e


def for_config(config: TrainingOptions) -> Architecture:
    """The registry entry that trains a from-scratch config kind."""
    for arch in REGISTRY.values():
        if arch.config_kind == config.kind:
            return arch
    raise TrainingError(f"no architecture builds config kind '{config.kind}'")


def pretrained_state_dict(
    model_name: str, weights_dir: Path | None = None
) -> tuple[dict[str, torch.Tensor], int]:
    """ImageNet weights: from ``weights_dir``'s manifest when it lists the model (sha256
    checked), else from torchvision's cache (honours $TORCH_HOME and files placed there).

    The file is untrusted wherever it came from: the cached one's sha256 must start with the
    hash its torchvision name carries (``resnet18-f37072fd.pth``), checked on every load, not
    only on download, and it loads weights-only. Returns the state dict and its number of
    classes; fails early with what to do.
    """
    import torchvision

    if weights_dir is not None:
        local = pretrained.local_state_dict(weights_dir, model_name)
        if local is not None:
            head = local.get(f"{TORCHVISION_HEADS[model_name]}.weight")
            if head is None:
                raise TrainingError(f"pretrained weights for {model_name} have no head weight")
            return local, int(head.shape[0])
    weights = torchvision.models.get_model_weights(model_name).DEFAULT
    state = pretrained.cached_state_dict(model_name, weights.url)
    return state, len(weights.meta["categories"])
