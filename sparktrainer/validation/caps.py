"""Resource caps (settings): a job beyond them is rejected before it trains."""

from __future__ import annotations

from itertools import pairwise

from sparktrainer.contracts.jobspec import (
    HuggingFaceConfig,
    MLPConfig,
    ResNetConfig,
    TorchvisionConfig,
    TrainingOptions,
)
from sparktrainer.settings import Limits


def _show(value: float) -> str:
    if isinstance(value, int) and abs(value) >= 10**15:
        return f"{value:.3e}" if abs(value) < 10**300 else f"(a {len(str(value))}-digit number)"
    return f"{value:g}"


def _over(name: str, value: float, cap: float) -> str | None:
    if value > cap:
        return f"{name} {_show(value)} is above this deployment's limit of {_show(cap)}"
    return None


def check_caps(config: TrainingOptions, limits: Limits) -> list[str]:
    """Every cap the config exceeds, as messages."""
    checks: list[tuple[str, float, float]] = [
        ("epochs", config.epochs, limits.epochs),
        ("batch_size", config.batch_size, limits.batch_size),
        ("learning_rate", config.learning_rate, limits.learning_rate),
        (
            "gradient_accumulation_steps",
            config.gradient_accumulation_steps,
            limits.gradient_accumulation_steps,
        ),
        ("data.num_samples", config.data.num_samples, limits.dataset_samples),
    ]
    if config.max_runtime_s is not None:
        checks.append(("max_runtime_s", config.max_runtime_s, limits.job_runtime_s))
    if isinstance(config, MLPConfig):
        checks += [
            ("input_size", config.input_size, limits.input_size),
            ("output_size", config.output_size, limits.num_classes),
            ("hidden_layers count", len(config.hidden_layers), limits.layers),
            ("hidden layer width", max(config.hidden_layers, default=0), limits.hidden_units),
        ]
        params = _mlp_parameters(config)
        checks.append(("model parameters", params, limits.model_parameters))
    if isinstance(config, ResNetConfig):
        checks += [
            ("num_classes", config.num_classes, limits.num_classes),
            ("ResNet blocks", sum(config.num_blocks), limits.layers),
            ("ResNet channels", max(config.channels), limits.hidden_units),
            (
                "input size",
                config.input_shape[0] * config.input_shape[1] * config.input_shape[2],
                limits.input_size,
            ),
        ]
    if isinstance(config, TorchvisionConfig):
        checks.append(("num_classes", config.num_classes, limits.num_classes))
    if isinstance(config, HuggingFaceConfig):
        checks += [
            ("num_classes", config.num_classes, limits.num_classes),
            ("max_length", config.max_length, limits.sequence_length),
        ]
    return [m for name, v, cap in checks if (m := _over(name, v, cap))]


def _mlp_parameters(config: MLPConfig) -> int:
    sizes = [config.input_size, *config.hidden_layers, config.output_size]
    return sum(a * b + b for a, b in pairwise(sizes))
