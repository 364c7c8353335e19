"""Where a HF job's base model comes from: hub (cache under HF_HOME), local path, registry."""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest

from sparktrainer.contracts.events import JobStarted
from sparktrainer.contracts.jobspec import HuggingFaceConfig
from sparktrainer.errors import ModelUnavailableError, TrainingError
from sparktrainer.training.hf.models import fetch_from_hub, hub_unreachable, resolve_source
from sparktrainer.training.hf.recipe import train_huggingface


@pytest.fixture
def offline_hub(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> Path:
    """An offline hub whose cache (HF_HOME/hub) is an empty temp folder."""
    from huggingface_hub import constants

    cache = tmp_path / "hf-home" / "hub"
    cache.mkdir(parents=True)
    monkeypatch.setattr(constants, "HF_HUB_OFFLINE", True)
    monkeypatch.setattr(constants, "HF_HUB_CACHE", str(cache))
    return cache


def _cache_snapshot(cache: Path, repo: str, files_from: Path) -> Path:
    """Lay out a hub cache entry the way huggingface_hub does (refs/main -> snapshot)."""
    entry = cache / f"models--{repo.replace('/', '--')}"
    snapshot = entry / "snapshots" / "0123456789abcdef"
    shutil.copytree(files_from, snapshot)
    (entry / "refs").mkdir()
    (entry / "refs" / "main").write_text("0123456789abcdef")
    return snapshot


def test_unreachable_hub_is_a_clear_training_error(offline_hub, hf_ctx, job_id) -> None:
    ctx = hf_ctx(job_id("hub-off"), {"model_name": "bert-base-uncased", "epochs": 1})
    with pytest.raises(TrainingError) as caught:
        train_huggingface(ctx)
    message = str(caught.value)
    assert "could not load model 'bert-base-uncased'" in message
    assert "the Hugging Face hub could not be reached" in message
    assert str(offline_hub) in message and "model_source 'local'" in message
    assert caught.value.retriable is False  # offline mode will not pass by itself
    assert not any(isinstance(e, JobStarted) for e in ctx.events)


def test_network_failure_is_recognised_through_the_exception_chain() -> None:
    from huggingface_hub.errors import LocalEntryNotFoundError

    try:
        try:
            raise ConnectionError("Name or service not known")
        except ConnectionError as e:
            raise LocalEntryNotFoundError("cannot find the requested files") from e
    except LocalEntryNotFoundError as err:
        assert hub_unreachable(OSError("We couldn't connect")) is False
        wrapped = OSError("We couldn't connect to 'https://huggingface.co'")
        wrapped.__cause__ = err
        assert hub_unreachable(wrapped)


def test_hub_model_in_the_cache_trains_offline(offline_hub, tiny_bert, hf_ctx, job_id) -> None:
    snapshot = _cache_snapshot(offline_hub, "acme/tiny-bert", tiny_bert)
    assert fetch_from_hub("acme/tiny-bert", weights=True) == snapshot
    ctx = hf_ctx(
        job_id("hub-cached"),
        {
            "model_name": "acme/tiny-bert",
            "epochs": 1,
            "batch_size": 32,
            "data": {"num_samples": 64},
        },
    )
    registered = train_huggingface(ctx)
    assert registered.architecture["model_type"] == "bert"


def test_missing_local_path_says_what_a_model_folder_is(hf_ctx, job_id, tmp_path) -> None:
    config = {"model_source": "local", "model_path": str(tmp_path / "nope")}
    ctx = hf_ctx(job_id("local-missing"), config)
    with pytest.raises(ModelUnavailableError, match="is not a transformers model folder"):
        train_huggingface(ctx)


def test_unknown_registered_model(s3, job_id, tmp_path) -> None:
    ghost = job_id("ghost")
    cfg = HuggingFaceConfig(model_source="model_id", model_id=ghost)
    with pytest.raises(ModelUnavailableError, match=f"model '{ghost}' is not registered"):
        resolve_source(cfg, "finetune", s3, tmp_path)


def test_registered_pytorch_model_is_refused(s3, job_id, tmp_path) -> None:
    mlp = job_id("mlp1")
    s3.put_json(f"models/{mlp}/metadata.json", {"framework": "pytorch"})
    s3.put_bytes(f"models/{mlp}/model.pth", b"x")
    cfg = HuggingFaceConfig(model_source="model_id", model_id=mlp)
    with pytest.raises(TrainingError, match=f"'{mlp}' is a pytorch model"):
        resolve_source(cfg, "finetune", s3, tmp_path)
