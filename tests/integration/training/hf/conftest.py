"""HF recipe and worker against the session's real S3 server (``store`` from tests/conftest.py)."""

from __future__ import annotations

from pathlib import Path

import pytest

from tests.integration.training.workerkit import recorder, worker  # noqa: F401  (fixtures)
from tests.unit.training.hf.hfkit import save_tiny_bert
from tests.unit.training.jobkit import hf_ctx, job_id, make_ctx, s3  # noqa: F401  (fixtures)


@pytest.fixture(scope="module")
def tiny_bert(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return save_tiny_bert(tmp_path_factory.mktemp("tiny-bert"))
