"""Where things live in the bucket (DESIGN.md, "Storage layout")."""

from __future__ import annotations

from sparktrainer.contracts.jobspec import check_relative_key, check_safe_id

MODELS = "models"
CHECKPOINTS = "checkpoints"
METADATA = "metadata.json"
PYTORCH_REQUIRED = ("model.pth", "config.json")


def model_prefix(model_id: str) -> str:
    """``models/{id}/``: the id is checked so nothing escapes the prefix."""
    return f"{MODELS}/{check_safe_id(model_id)}/"


def model_key(model_id: str, name: str) -> str:
    """The key of one file of a model."""
    return model_prefix(model_id) + check_relative_key(name)


def checkpoint_prefix(job_id: str) -> str:
    """``checkpoints/{job_id}/``: the resumable state of a running job."""
    return f"{CHECKPOINTS}/{check_safe_id(job_id)}/"
