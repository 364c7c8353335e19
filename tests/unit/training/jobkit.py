"""Job contexts on the session's real S3 server, for the recipe tests (PyTorch and HF).

The conftests of tests/unit/training (hf/ too) and tests/integration/training/hf import these
fixtures. Every test shares one bucket, so a test names its jobs with ``job_id(name)``: the
same id for a name all through the test, and one no other test (or run) uses.
"""

from __future__ import annotations

import secrets
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from sparktrainer.contracts.events import JobValidated
from sparktrainer.contracts.kinds import choices, kind_of
from sparktrainer.settings import Settings
from sparktrainer.storage.layout import model_key
from sparktrainer.storage.s3 import ObjectStore
from sparktrainer.training.job.context import JobContext


def make_job(
    job_id: str, kind: str, config: dict[str, Any], job_type: str = "train"
) -> JobValidated:
    """A validated job with its config normalized the way the validator does.

    ``kind`` is a config kind, or ``huggingface`` for the HF kind its model_source selects.
    """
    if kind == "huggingface":
        kind = choices(kind, "model_source")[config.get("model_source", "huggingface")].name
    normalized = kind_of(kind).config.model_validate(config).model_dump(mode="json")
    framework = kind_of(kind).framework
    return JobValidated(
        job_id=job_id,
        name=job_id,
        type=job_type,
        framework=framework,
        config_kind=kind,
        config=normalized,
    )


class RecordingStore(ObjectStore):
    """The real ObjectStore (real uploads), also noting each uploaded key in order."""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.puts: list[str] = []

    def put_bytes(
        self, key: str, data: bytes, content_type: str = "application/octet-stream"
    ) -> None:
        super().put_bytes(key, data, content_type)
        self.puts.append(key)

    def put_file(self, key: str, path: Path, sha256: str | None = None) -> None:
        super().put_file(key, path, sha256)
        self.puts.append(key)


@pytest.fixture
def s3(store: ObjectStore, settings: Settings) -> RecordingStore:
    """The session's real S3 bucket (``store``); ``s3.puts``: this test's uploads, in order."""
    recording = RecordingStore.from_settings(settings)
    assert isinstance(recording, RecordingStore)
    return recording


@pytest.fixture
def job_id() -> Callable[[str], str]:
    """job_id(name): an id unique to this test and run, the same for a name every call."""
    run = secrets.token_hex(4)
    return lambda name: f"{name}-{run}"


@pytest.fixture
def make_ctx(tmp_path: Path, s3: RecordingStore) -> Callable[..., JobContext]:
    """Build a job's context on ``s3``; its events land in ``ctx.events`` (and ``emit``)."""

    def build(
        job_id: str,
        kind: str,
        config: dict[str, Any],
        *,
        attempt: int = 1,
        job_type: str = "train",
        emit: Callable[[Any], None] | None = None,
        **settings: Any,
    ) -> JobContext:
        events: list[Any] = []
        workdir = tmp_path / f"{job_id}-{attempt}"
        workdir.mkdir()

        def record(event: Any) -> None:
            events.append(event)
            if emit is not None:
                emit(event)

        ctx = JobContext(
            job=make_job(job_id, kind, config, job_type),
            store=s3,
            settings=Settings(**{"progress_every_s": 0.0, **settings}),
            workdir=workdir,
            emit=record,
            attempt=attempt,
        )
        ctx.events = events  # type: ignore[attr-defined]
        return ctx

    return build


@pytest.fixture
def hf_ctx(make_ctx: Callable[..., JobContext]) -> Callable[..., JobContext]:
    """``make_ctx`` for a Hugging Face job, a fine-tune unless ``job_type`` says otherwise."""

    def build(
        job_id: str, config: dict[str, Any], *, job_type: str = "finetune", **kwargs: Any
    ) -> JobContext:
        return make_ctx(job_id, "huggingface", config, job_type=job_type, **kwargs)

    return build


@pytest.fixture
def stored(s3: RecordingStore, tmp_path: Path) -> Callable[[str, str], Any]:
    """Read a registered model's file: JSON parsed, tensors from .safetensors and .pth."""
    from safetensors.torch import load

    from sparktrainer.training.checkpoint import safe_load

    def read(model_id: str, name: str) -> Any:
        key = model_key(model_id, name)
        if name.endswith(".json"):
            return s3.get_json(key)
        if name.endswith(".safetensors"):
            return load(s3.get_bytes(key))
        local = tmp_path / f"read-{model_id}-{name}"
        s3.get_file(key, local)
        return safe_load(local, key)

    return read
