"""HF recipe against the session's real S3 server (``store`` from tests/conftest.py)."""

from __future__ import annotations

import secrets
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from sparktrainer.contracts.events import JobValidated
from sparktrainer.contracts.jobspec import CONFIG_KINDS
from sparktrainer.settings import Settings
from sparktrainer.storage.s3 import ObjectStore
from sparktrainer.training.context import JobContext
from tests.unit.hf.hfkit import save_tiny_bert


@pytest.fixture(scope="module")
def tiny_bert(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return save_tiny_bert(tmp_path_factory.mktemp("tiny-bert"))


@pytest.fixture
def s3_ctx(tmp_path: Path, store: ObjectStore) -> Callable[..., JobContext]:
    """A HF fine-tune job's context on the real store; events land in ``ctx.events``."""

    def build(
        job_id: str,
        config: dict[str, Any],
        *,
        attempt: int = 1,
        emit: Callable[[Any], None] | None = None,
    ) -> JobContext:
        events: list[Any] = []
        workdir = tmp_path / f"{job_id}-{attempt}"
        workdir.mkdir()

        def record(event: Any) -> None:
            events.append(event)
            if emit is not None:
                emit(event)

        normalized = CONFIG_KINDS["huggingface"].model_validate(config).model_dump(mode="json")
        job = JobValidated(
            job_id=job_id, name=job_id, type="finetune", framework="huggingface",
            config_kind="huggingface", config=normalized,
        )  # fmt: skip
        ctx = JobContext(
            job=job, store=store, settings=Settings(progress_every_s=0.0), workdir=workdir,
            emit=record, attempt=attempt,
        )  # fmt: skip
        ctx.events = events  # type: ignore[attr-defined]
        return ctx

    return build


@pytest.fixture
def job_id() -> Callable[[str], str]:
    """Ids unique per run, so the shared store never holds an earlier run's model."""
    run = secrets.token_hex(3)
    return lambda name: f"hf-{name}-{run}"
