"""Where things live in the bucket: ``models/{id}/``, ``checkpoints/{job_id}/`` and a job's
own output, ``jobs/{job_id}/logs/attempt-{n}.log``.

Both hold the job's TensorBoard event files under ``logs/``.

A model's files sit under its prefix, ``metadata.json`` written last (a model is listed only
once all its files are there); a running job's resumable state sits under its checkpoint prefix.
"""

from __future__ import annotations

from sparktrainer.contracts.jobspec import check_relative_key, check_safe_id

MODELS = "models"
CHECKPOINTS = "checkpoints"
METADATA = "metadata.json"
LOGS_DIR = "logs/"  # a job's TensorBoard files, under its model's and its checkpoint's prefix
MAX_LOG_FILES = 256  # one event file per attempt, and attempts are capped far below this


def model_prefix(model_id: str) -> str:
    """``models/{id}/``: the id is checked so nothing escapes the prefix."""
    return f"{MODELS}/{check_safe_id(model_id)}/"


def model_key(model_id: str, name: str) -> str:
    """The key of one file of a model."""
    return model_prefix(model_id) + check_relative_key(name)


def checkpoint_prefix(job_id: str) -> str:
    """``checkpoints/{job_id}/``: the resumable state of a running job."""
    return f"{CHECKPOINTS}/{check_safe_id(job_id)}/"


def job_logs_prefix(job_id: str) -> str:
    """``jobs/{job_id}/logs/``: the output of each attempt of a job (kept after it ends)."""
    return f"jobs/{check_safe_id(job_id)}/logs/"


def job_log_key(job_id: str, attempt: int) -> str:
    """``jobs/{job_id}/logs/attempt-{n}.log``: one attempt's stdout, stderr and logging."""
    return f"{job_logs_prefix(job_id)}attempt-{int(attempt)}.log"
