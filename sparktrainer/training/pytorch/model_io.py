"""How a PyTorch model is described, obtained and written.

``config.json`` (format ``sparktrainer.pytorch.v1``) holds the builder and every builder
argument, so any registered model can be rebuilt from it alone; ``model.pth`` holds its
weights as a weights-only state dict. ``resolve_model`` gives the starting model of a job:
a fresh architecture, a torchvision one (optionally pretrained), or a registered parent.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch
from torch import nn

from sparktrainer.contracts.jobspec import (
    RegisteredPyTorchConfig,
    TorchvisionConfig,
    TrainingOptions,
)
from sparktrainer.errors import ModelUnavailableError, ObjectNotFound, TrainingError
from sparktrainer.storage.layout import METADATA, model_key
from sparktrainer.storage.s3 import ObjectStore
from sparktrainer.training.checkpoint import artifact_hashes, check_sha256, safe_load
from sparktrainer.training.pytorch import architectures
from sparktrainer.training.pytorch.architectures import Architecture, Params

CONFIG_FORMAT = "sparktrainer.pytorch.v1"
MODEL_FORMAT = "sparktrainer.pytorch.model.v1"


@dataclass
class ModelSpec:
    """A buildable architecture: a registry builder name and all its arguments."""

    builder: str
    params: Params

    @property
    def arch(self) -> Architecture:
        """The registry entry of this builder."""
        return architectures.get(self.builder)

    def config_json(self) -> dict[str, Any]:
        """The ``config.json`` document (the validator and fine-tuning read exactly this)."""
        return {
            "format": CONFIG_FORMAT,
            "builder": self.builder,
            "params": self.params,
            "num_classes": self.arch.num_classes(self.params),
            "input_shape": list(self.arch.input_shape(self.params)),
            "task": "classification",
        }

    @classmethod
    def from_config_json(cls, doc: Any, model_id: str) -> ModelSpec:
        """Read a ``config.json``; anything else is a clear error."""
        if not isinstance(doc, dict) or doc.get("format") != CONFIG_FORMAT:
            raise TrainingError(
                f"model '{model_id}' is not a SparkTrainer PyTorch model: its config.json "
                f"lacks format '{CONFIG_FORMAT}'"
            )
        if not isinstance(doc.get("params"), dict):
            raise TrainingError(f"config.json of model '{model_id}' has no params object")
        return cls(str(doc.get("builder")), dict(doc["params"]))

    def build(self) -> nn.Module:
        """A fresh model of this architecture (random weights)."""
        try:
            return self.arch.build(self.params)
        except (KeyError, TypeError, ValueError) as e:
            raise TrainingError(
                f"cannot build '{self.builder}' from params {sorted(self.params)}: {e}"
            ) from e


@dataclass
class ResolvedModel:
    """The model a job starts from, and where it came from."""

    spec: ModelSpec
    model: nn.Module
    base_model_id: str | None = None
    lineage: list[str] = field(default_factory=list)
    notes: dict[str, Any] = field(default_factory=dict)


def resolve_model(
    config: TrainingOptions, store: ObjectStore, workdir: Path, weights_dir: Path | None = None
) -> ResolvedModel:
    """Build the starting model (fails early on missing parents or pretrained weights).

    ``weights_dir``: the operator's folder of pretrained weights (``pretrained.py``).
    """
    if isinstance(config, RegisteredPyTorchConfig):
        resolved = _from_parent(config, store, workdir)
    else:
        arch = architectures.for_config(config)
        spec = ModelSpec(arch.name, arch.params_from_config(config))
        pretrained = isinstance(config, TorchvisionConfig) and config.pretrained
        model = _pretrained(spec, weights_dir) if pretrained else spec.build()
        resolved = ResolvedModel(spec, model, notes={"pretrained": pretrained})
    if getattr(config, "freeze_layers", False):
        resolved.spec.arch.freeze(resolved.model, resolved.spec.params)
    return resolved


def _pretrained(spec: ModelSpec, weights_dir: Path | None) -> nn.Module:
    state, classes = architectures.pretrained_state_dict(spec.params["model_name"], weights_dir)
    model = ModelSpec(spec.builder, {**spec.params, "num_classes": classes}).build()
    model.load_state_dict(state)
    if classes != spec.params["num_classes"]:
        spec.arch.replace_head(model, spec.params, spec.params["num_classes"])
    return model


def _from_parent(
    config: RegisteredPyTorchConfig, store: ObjectStore, workdir: Path
) -> ResolvedModel:
    parent = config.model_id
    try:
        meta = store.get_json(model_key(parent, METADATA))
        hashes = artifact_hashes(meta)
        arch_file, local = workdir / f"parent-{parent}.json", workdir / f"parent-{parent}.pth"
        store.get_file(model_key(parent, "config.json"), arch_file)
        store.get_file(model_key(parent, "model.pth"), local)
    except ObjectNotFound as e:
        raise ModelUnavailableError(
            f"model '{parent}' is not registered or incomplete (needs models/{parent}/"
            "config.json, model.pth and metadata.json): fine-tune a model from the models list"
        ) from e
    for name, path in (("config.json", arch_file), ("model.pth", local)):
        check_sha256(path, hashes.get(name), f"{name} of model '{parent}'")
    spec = ModelSpec.from_config_json(_json_file(arch_file, parent), parent)
    model = spec.build()
    load_weights(model, local, f"model.pth of '{parent}'")
    notes = {"parent_num_classes": spec.arch.num_classes(spec.params)}
    if config.num_classes and config.num_classes != notes["parent_num_classes"]:
        spec.params = spec.arch.replace_head(model, spec.params, config.num_classes)
    lineage = [parent, *[str(m) for m in meta.get("lineage", [])]]
    return ResolvedModel(spec, model, base_model_id=parent, lineage=lineage, notes=notes)


def _json_file(path: Path, model_id: str) -> Any:
    try:
        return json.loads(path.read_bytes())
    except (ValueError, RecursionError) as e:
        raise TrainingError(f"config.json of model '{model_id}' is not JSON") from e


def load_weights(model: nn.Module, path: Path, what: str) -> dict[str, Any]:
    """Load a ``model.pth`` (weights only) into ``model``; returns the whole payload."""
    payload = safe_load(path, what)
    state = payload.get("model_state_dict") if isinstance(payload, dict) else None
    if not isinstance(state, dict):
        raise TrainingError(f"{what} has no model_state_dict")
    try:
        model.load_state_dict(state)
    except RuntimeError as e:
        raise TrainingError(f"{what} does not match its config.json: {str(e)[:300]}") from e
    return payload


def write_model_file(path: Path, model_state: dict[str, torch.Tensor], **fields: Any) -> Path:
    """``model.pth``: {format, model_state_dict, optimizer_state_dict, epoch, metrics, ...}."""
    payload = {"format": MODEL_FORMAT, "model_state_dict": model_state, **fields}
    torch.save(payload, path)
    return path
