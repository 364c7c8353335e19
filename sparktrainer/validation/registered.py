"""Checks that read the object store: a registered parent model exists and is complete."""

from __future__ import annotations

from typing import Any

from sparktrainer.contracts.jobspec import (
    HuggingFaceConfig,
    RegisteredPyTorchConfig,
    TrainingOptions,
)
from sparktrainer.errors import ObjectNotFound
from sparktrainer.storage.layout import METADATA, PYTORCH_REQUIRED, model_key
from sparktrainer.storage.s3 import ObjectStore
from sparktrainer.validation import messages

PYTORCH_BUILDERS = ("mlp", "resnet", "torchvision")
HF_WEIGHTS = ("model.safetensors", "adapters/adapter_model.safetensors")


def check_registered_model(
    config: TrainingOptions, framework: Any, store: ObjectStore
) -> tuple[list[str], list[str]]:
    """Errors and warnings about the model a fine-tune job starts from (if any)."""
    if isinstance(config, RegisteredPyTorchConfig):
        return _check_pytorch_parent(config.model_id, store), []
    if isinstance(config, HuggingFaceConfig):
        return _check_hf(config, store)
    return [], []


def _metadata(model_id: str, store: ObjectStore) -> dict[str, Any] | None:
    try:
        meta = store.get_json(model_key(model_id, METADATA))
    except ObjectNotFound:
        return None
    return meta if isinstance(meta, dict) else {}


def _check_pytorch_parent(model_id: str, store: ObjectStore) -> list[str]:
    meta = _metadata(model_id, store)
    if meta is None:
        return [messages.model_not_found(model_id)]
    if meta.get("framework", "pytorch") != "pytorch":
        return [
            f"Model '{model_id}' is a {meta.get('framework')} model: fine-tune it with "
            f"framework '{meta.get('framework')}'"
        ]
    missing = [f for f in PYTORCH_REQUIRED if not store.exists(model_key(model_id, f))]
    if missing:
        return [f"Model '{model_id}' is missing required file(s): {', '.join(missing)}"]
    try:
        arch = store.get_json(model_key(model_id, "config.json"))
    except (ObjectNotFound, ValueError):
        arch = None
    if not _complete_architecture(arch):
        return [
            f"Model '{model_id}' has incomplete architecture information in config.json: "
            f"it needs 'builder' (one of {', '.join(PYTORCH_BUILDERS)}) and 'params' to be rebuilt"
        ]
    return []


def _complete_architecture(arch: Any) -> bool:
    return (
        isinstance(arch, dict)
        and arch.get("builder") in PYTORCH_BUILDERS
        and isinstance(arch.get("params"), dict)
        and bool(arch["params"])
    )


def _check_hf(config: HuggingFaceConfig, store: ObjectStore) -> tuple[list[str], list[str]]:
    hf_config: dict[str, Any] | None = None
    if config.model_source == "model_id" and config.model_id:
        meta = _metadata(config.model_id, store)
        if meta is None:
            return [messages.model_not_found(config.model_id)], []
        if meta.get("framework") != "huggingface":
            return [
                f"Model '{config.model_id}' is a {meta.get('framework')} model: fine-tune it "
                f"with framework '{meta.get('framework')}'"
            ], []
        try:
            hf_config = store.get_json(model_key(config.model_id, "config.json"))
        except (ObjectNotFound, ValueError):
            return [f"Model '{config.model_id}' is missing required file(s): config.json"], []
        if not any(store.exists(model_key(config.model_id, w)) for w in HF_WEIGHTS):
            return [f"Model '{config.model_id}' is missing its weights (model.safetensors)"], []
    if config.lora.enabled:
        return _check_lora(config, hf_config)
    return [], []


def _check_lora(
    config: HuggingFaceConfig, hf_config: dict[str, Any] | None
) -> tuple[list[str], list[str]]:
    from sparktrainer.validation.hf_modules import check_lora_targets, model_type_for

    model_type = model_type_for(config, hf_config)
    return check_lora_targets(model_type, None, config.lora.target_modules)
