"""Error messages a person can act on: what was wrong, and what to write instead."""

from __future__ import annotations

import json
from typing import Any

from pydantic import ValidationError

from sparktrainer.contracts.jobspec import FRAMEWORKS_KNOWN, FRAMEWORKS_RUN, JOB_TYPES

_POSITIVE = ("epochs", "batch_size", "learning_rate")


def _show(value: Any, limit: int = 60) -> str:
    try:
        text = json.dumps(value, allow_nan=True, default=str)
    except (TypeError, ValueError, RecursionError):
        text = repr(type(value).__name__)
    return text if len(text) <= limit else text[: limit - 3] + "..."


def quoted(value: Any) -> str:
    """A value as JSON, shortened: how messages quote what was given."""
    return _show(value)


def _loc(prefix: str, loc: tuple[Any, ...]) -> str:
    parts = [prefix] if prefix else []
    for item in loc:
        if isinstance(item, int):
            parts[-1:] = [f"{parts[-1]}[{item}]"] if parts else [f"[{item}]"]
        elif not str(item).startswith(
            ("function-after", "function-", "constrained-")
        ) and item not in (
            "float",
            "int",
            "tuple",
            "list",
            "str",
            "bool",
            "literal",
        ):
            parts.append(str(item))
    return ".".join(parts) or "job"


def from_pydantic(error: ValidationError, prefix: str = "") -> list[str]:
    """One readable sentence per pydantic error, deduplicated across union branches (linear)."""
    out: dict[str, None] = {}
    for err in error.errors(include_url=False):
        where = _loc(prefix, tuple(err["loc"]))
        field = where.rsplit(".", 1)[-1]
        kind = err["type"]
        got = err.get("input")
        if kind == "extra_forbidden":
            msg = f"Unknown field '{where}': remove it or check its spelling"
        elif kind == "missing":
            msg = f"Missing required field '{where}'"
        elif field in _POSITIVE:
            msg = f"{field} must be a positive number (got {_show(got)})"
        elif kind == "literal_error":
            allowed = err.get("ctx", {}).get("expected", "")
            msg = f"{where} must be one of {allowed} (got {_show(got)})"
        else:
            msg = f"{where}: {err['msg'].removeprefix('Value error, ')} (got {_show(got)})"
        out[msg] = None
    return list(out)


def not_an_object(body: Any) -> str:
    """The job is JSON but not an object."""
    return (
        f'A job must be a JSON object like {{"type": ..., "framework": ..., "config": {{...}}}}'
        f"; got {type(body).__name__} {_show(body)}"
    )


def bad_framework(framework: Any) -> str:
    """Framework outside the guide's list."""
    return f"Invalid framework {_show(framework)}: must be one of {', '.join(FRAMEWORKS_KNOWN)}"


def framework_not_run(framework: str) -> str:
    """Known to the guide, not run by this deployment."""
    return (
        f"Framework '{framework}' is recognised but not supported by this deployment's "
        f"trainers: use one of {', '.join(FRAMEWORKS_RUN)}"
    )


def bad_job_type(job_type: Any) -> str:
    """Job type outside train/finetune."""
    return f"Invalid job type {_show(job_type)}: must be one of {', '.join(JOB_TYPES)}"


def bad_selector(framework: str, field: str, value: Any, known: tuple[str, ...]) -> str:
    """A config field that selects the job's kind names no kind."""
    if field == "architecture":
        return f"Unknown architecture {_show(value)}: must be one of {', '.join(known)}"
    label = {"pytorch": "PyTorch", "huggingface": "Hugging Face"}.get(framework, framework)
    return f"Unknown {field} {_show(value)}: {label} jobs accept {', '.join(known)}"


def missing_architecture(job_type: Any, known: tuple[str, ...]) -> str:
    """A PyTorch job that names neither an architecture nor a model source."""
    return (
        f"config.architecture is required for a PyTorch {job_type or 'train'} job "
        f"(one of {', '.join(known)}), or set model_source to 'model_id' or 'torchvision'"
    )


def estimate_later(kind: str) -> str:
    """A job whose cost cannot be known before its model is fetched."""
    return (
        f"the memory of this {kind} job cannot be estimated before its model's config is "
        "read: the trainer estimates it (and applies the same caps) before loading weights"
    )


def model_not_found(model_id: str) -> str:
    """The guide's message, word for word."""
    return f"Model with ID '{model_id}' not found in models directory"


def id_taken(job_id: str) -> str:
    """A new job under the id of a different job (a true duplicate is validated again)."""
    return (
        f"job_id '{job_id}' is already taken by a different job (same id, other content): "
        "choose a new job_id, or resubmit the original job unchanged"
    )
