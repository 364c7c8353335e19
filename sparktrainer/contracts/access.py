"""What a job may read besides its own model: data buckets and local model folders.

The S3 naming rules (and no credentials inside a URI) are part of the job's schema; which
buckets and folders a deployment lets jobs read is its policy (``SPARKTRAINER_DATA_BUCKETS``,
``SPARKTRAINER_LOCAL_MODEL_ROOTS``). The validator checks both, and the trainer again where
the job runs, on its own disk.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from pathlib import Path

from sparktrainer.settings import Settings

# The embedded broker (tansu) keeps its log in this bucket: never a job's data, whatever is set.
RESERVED_BUCKETS = ("tansu",)
DEFAULT_BUCKET: str = Settings.model_fields["s3_bucket"].default
_BUCKET = re.compile(r"[a-z0-9][a-z0-9.-]{1,61}[a-z0-9]")
_IPV4 = re.compile(r"\d{1,3}(\.\d{1,3}){3}")
_HUB_PART = re.compile(r"[A-Za-z0-9][A-Za-z0-9._-]{0,95}")


def bucket_name_problem(bucket: str) -> str | None:
    """Why ``bucket`` is not an S3 bucket name (None when it is one)."""
    if any(c in bucket for c in "@:"):
        return (
            "an s3:// URI carries no credentials or ports: s3://bucket/key (the trainer has keys)"
        )
    if not _BUCKET.fullmatch(bucket) or ".." in bucket or _IPV4.fullmatch(bucket):
        return (
            f"'{bucket[:80]}' is not an S3 bucket name: 3-63 lowercase letters, digits, '.' "
            "and '-', starting and ending with a letter or digit"
        )
    return None


def hub_name_problem(name: str) -> str | None:
    """Why ``name`` is not a Hugging Face hub repository id like ``org/model`` (None if it is)."""
    parts = name.split("/")
    if len(parts) <= 2 and all(_HUB_PART.fullmatch(p) and ".." not in p for p in parts):
        if "--" not in name:
            return None
    return (
        f"model_name '{name[:80]}' must be a hub name like 'org/model' (letters, digits, '.', "
        "'_', '-'; no URL or credentials); use model_source 'local' with model_path for a folder"
    )


def _names(text: str) -> list[str]:
    return [part.strip() for part in text.split(",") if part.strip()]


@dataclass(frozen=True)
class Access:
    """The buckets jobs may read data from, and the folders local models may come from."""

    data_buckets: frozenset[str] = frozenset({DEFAULT_BUCKET})
    local_model_roots: tuple[Path, ...] = ()

    @classmethod
    def from_settings(cls, settings: Settings) -> Access:
        """The deployment's policy (defaults: its own bucket; no local folders)."""
        buckets = _names(settings.data_buckets) or [settings.s3_bucket]
        roots = tuple(Path(r).expanduser().resolve() for r in _names(settings.local_model_roots))
        return cls(frozenset(b for b in buckets if b not in RESERVED_BUCKETS), roots)

    def bucket_problem(self, source: str) -> str | None:
        """Why a job may not read ``source`` (None for non-S3 sources and allowed buckets)."""
        if not source.startswith("s3://"):
            return None
        bucket = source[5:].partition("/")[0]
        if bucket in RESERVED_BUCKETS:
            return f"config.data.source: bucket '{bucket}' holds the broker's log, never job data"
        if bucket not in self.data_buckets:
            allowed = ", ".join(sorted(self.data_buckets)) or "none"
            return (
                f"config.data.source: bucket '{bucket[:80]}' is not one this deployment lets jobs "
                f"read (SPARKTRAINER_DATA_BUCKETS; allowed: {allowed})"
            )
        return None

    def local_path_problem(self, model_path: str) -> str | None:
        """Why a job may not load a model from ``model_path`` on this machine (None: it may)."""
        if not self.local_model_roots:
            return (
                "model_source 'local' is off on this deployment (SPARKTRAINER_LOCAL_MODEL_ROOTS "
                "lists the folders it may read): register the model and use model_source 'model_id'"
            )
        try:
            resolved = Path(model_path).expanduser().resolve()  # '..' and symlinks followed
        except (OSError, ValueError, RuntimeError):
            return f"config.model_path '{model_path[:80]}' is not a usable path"
        if any(resolved.is_relative_to(root) for root in self.local_model_roots):
            return None
        roots = ", ".join(str(r) for r in self.local_model_roots)
        return (
            f"config.model_path '{model_path[:80]}' is outside the folders this deployment lets "
            f"jobs read (SPARKTRAINER_LOCAL_MODEL_ROOTS: {roots})"
        )
