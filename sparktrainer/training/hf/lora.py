"""LoRA through peft: pick and check target modules, wrap, save adapters, merge or unload."""

from __future__ import annotations

import dataclasses
import shutil
import tempfile
from pathlib import Path
from typing import Any

import torch

from sparktrainer.contracts.hf_modules import check_lora_targets, default_targets
from sparktrainer.contracts.jobspec import LoraSpec
from sparktrainer.errors import TrainingError
from sparktrainer.training.hf.models import ADAPTERS_DIR, ModelSource, load_tokenizer

ADAPTER_FILES = ("adapter_config.json", "adapter_model.safetensors")
# When a family is unknown, the first of these sets fully present among the layers is used.
_SCAN_PREFERENCE = (
    ("q_proj", "v_proj"),
    ("query", "value"),
    ("c_attn",),
    ("qkv_proj",),
    ("query_key_value",),
    ("Wqkv",),
    ("qkv",),
    ("q_lin", "v_lin"),
    ("query_proj", "value_proj"),
    ("q", "v"),
)


def lora_layer_names(model: torch.nn.Module) -> set[str]:
    """Full names of the layers peft can wrap (linear, conv, embedding)."""
    from transformers.pytorch_utils import Conv1D

    kinds = (torch.nn.Linear, torch.nn.Embedding, torch.nn.Conv1d, torch.nn.Conv2d, Conv1D)
    return {name for name, module in model.named_modules() if name and isinstance(module, kinds)}


def resolve_targets(model: Any, spec: LoraSpec) -> list[str]:
    """The job's target modules, checked against the model; or its family's default."""
    model_type = getattr(model.config, "model_type", None)
    names = lora_layer_names(model)
    errors, _ = check_lora_targets(model_type, names, spec.target_modules)
    if errors:
        raise TrainingError("; ".join(errors))
    if spec.target_modules is not None:
        return list(spec.target_modules)
    leaves = {n.rsplit(".", 1)[-1] for n in names}
    default = default_targets(model_type)
    if default and set(default) <= leaves:
        return default
    for candidate in _SCAN_PREFERENCE:
        if set(candidate) <= leaves:
            return list(candidate)
    raise TrainingError(
        f"no default LoRA targets known for {model_type or 'this'} model; set lora.target_modules "
        f"to some of its layers: {sorted(leaves)[:40]}"
    )


def apply_lora(model: Any, spec: LoraSpec, task: str, base_name: str) -> Any:
    """Wrap the model with fresh LoRA adapters; only adapters (and a new head) train."""
    from peft import LoraConfig, TaskType, get_peft_model
    from transformers.pytorch_utils import Conv1D

    targets = resolve_targets(model, spec)
    conv1d = any(
        isinstance(m, Conv1D) and n.rsplit(".", 1)[-1] in targets for n, m in model.named_modules()
    )
    config = LoraConfig(
        task_type=TaskType.SEQ_CLS if task == "classification" else TaskType.CAUSAL_LM,
        r=spec.r,
        lora_alpha=spec.alpha,  # type: ignore[arg-type]  # peft types it int; floats work
        lora_dropout=float(spec.dropout),
        target_modules=targets,
        fan_in_fan_out=conv1d,  # GPT-2's Conv1D stores weights transposed
    )
    try:
        wrapped = get_peft_model(model, config)
    except ValueError as e:
        raise TrainingError(f"peft could not add LoRA adapters to {targets}: {e}"[:500]) from e
    # The adapters record the model the job named, not the temp folder it was loaded from.
    wrapped.peft_config["default"].base_model_name_or_path = base_name
    return wrapped


def is_peft(model: Any) -> bool:
    """Whether the model is wrapped by peft."""
    from peft import PeftModel

    return isinstance(model, PeftModel)


def save_adapters(model: Any, folder: Path) -> dict[str, Path]:
    """Write ``adapter_config.json`` and ``adapter_model.safetensors``; the files by name."""
    model.save_pretrained(folder, safe_serialization=True)
    missing = [f for f in ADAPTER_FILES if not (folder / f).is_file()]
    if missing:
        raise TrainingError(f"peft did not write {missing} in {folder}")
    return {f"{ADAPTERS_DIR}/{f}": folder / f for f in ADAPTER_FILES}


def fold_adapters(model: Any, merge: bool) -> Any:
    """The plain transformers model: adapters merged into the weights, or removed (base kept)."""
    return model.merge_and_unload() if merge else model.unload()


def merge_parent_adapters(source: ModelSource, workdir: Path) -> ModelSource:
    """A registered parent trained with unmerged LoRA, as one merged model folder.

    Its ``model.safetensors`` holds the base weights and ``adapters/`` the LoRA weights; the
    child starts from base + adapters, exactly what the parent's users get.
    """
    from peft import PeftModel
    from transformers import AutoModelForCausalLM, AutoModelForSequenceClassification

    meta = source.parent or {}
    adapters = source.directory / ADAPTERS_DIR
    if not (adapters / "adapter_config.json").is_file() or (meta.get("lora") or {}).get("merge"):
        return source
    if not (adapters / "adapter_model.safetensors").is_file():
        raise TrainingError(
            f"model '{source.name}' has LoRA adapters without adapter_model.safetensors; "
            "only safetensors adapters are loaded"
        )
    cls = (
        AutoModelForCausalLM
        if meta.get("task") == "generation"
        else AutoModelForSequenceClassification
    )
    base = cls.from_pretrained(source.directory, use_safetensors=True)
    merged = PeftModel.from_pretrained(base, adapters).merge_and_unload()
    folder = Path(tempfile.mkdtemp(prefix="merged-", dir=workdir))
    merged.save_pretrained(folder)
    load_tokenizer(source.directory, source.name).save_pretrained(folder)
    shutil.rmtree(source.directory, ignore_errors=True)
    return dataclasses.replace(source, directory=folder)
