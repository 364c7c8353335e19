"""The Hugging Face recipe end to end on tiny models and the real S3 server: it learns,
saves, resumes and stops."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
import torch
from safetensors.torch import load_file

from sparktrainer.contracts.events import CheckpointSaved, JobProgress
from sparktrainer.errors import JobCancelledError, TrainingError
from sparktrainer.training.hf.recipe import HuggingFaceRecipe, train_huggingface
from tests.unit.training.hf.hfkit import epoch_ends, started

SENTENCES = ["the day was great and wonderful", "it was a terrible and awful thing"]


def download(store: Any, model_id: str, folder: Path) -> Path:
    """A registered model's files, as a local folder."""
    prefix = f"models/{model_id}/"
    for key in store.list(prefix):
        target = folder / key[len(prefix) :]
        target.parent.mkdir(parents=True, exist_ok=True)
        store.get_file(key, target)
    return folder


def logits(model: Any, folder: Path) -> torch.Tensor:
    """The model's logits on two fixed sentences, in eval mode."""
    from transformers import AutoTokenizer

    batch = AutoTokenizer.from_pretrained(folder)(SENTENCES, padding=True, return_tensors="pt")
    model.eval()
    with torch.no_grad():
        return model(**batch).logits.float()


def classify(tiny_bert: Path, **overrides: Any) -> dict[str, Any]:
    config: dict[str, Any] = {
        "model_source": "local",
        "model_path": str(tiny_bert),
        "epochs": 2,
        "batch_size": 16,
        "learning_rate": 3e-3,
        "data": {"num_samples": 384},
    }
    config.update(overrides)
    return config


def test_classification_learns_and_registers_safetensors(
    tiny_bert, hf_ctx, s3, stored, job_id, tmp_path
) -> None:
    cls = job_id("cls")
    ctx = hf_ctx(cls, classify(tiny_bert))
    registered = train_huggingface(ctx)
    ends = epoch_ends(ctx.events)
    assert [e.epoch for e in ends] == [1, 2]
    assert ends[-1].val_accuracy is not None and ends[-1].val_accuracy >= 0.9  # chance is 0.5
    assert registered.metrics["val_accuracy"] == ends[-1].val_accuracy
    assert type(ctx.events[0]).__name__ == "JobStarted"
    assert [e.epoch for e in ctx.events if isinstance(e, CheckpointSaved)] == [1, 2]
    names = {a.path for a in registered.artifacts}
    assert {"model.safetensors", "config.json", "tokenizer.json", "tokenizer_config.json"} <= names
    assert not any(n.endswith((".bin", ".pt", ".pth", ".pkl")) for n in names)
    assert s3.puts[-1] == f"models/{cls}/metadata.json"  # written last
    meta = stored(cls, "metadata.json")
    assert meta["base_model"] == str(tiny_bert) and meta["task_type"] == "classification"
    assert meta["lora"] == {"enabled": False} and meta["precision"] == "float32"
    assert meta["init"] == "pretrained" and meta["architecture"]["num_labels"] == 2
    from transformers import AutoModelForSequenceClassification

    folder = download(s3, cls, tmp_path / "cls")
    reloaded = AutoModelForSequenceClassification.from_pretrained(folder, use_safetensors=True)
    assert logits(reloaded, folder).argmax(-1).tolist() == [0, 1]


def test_train_starts_fresh_and_finetune_starts_from_the_weights(
    tiny_bert, hf_ctx, stored, job_id
) -> None:
    source = load_file(tiny_bert / "model.safetensors")["embeddings.word_embeddings.weight"]
    for job_type in ("train", "finetune"):
        config = classify(tiny_bert, epochs=1, learning_rate=1e-12, data={"num_samples": 32})
        train_huggingface(hf_ctx(job_id(job_type), config, job_type=job_type))
        saved = stored(job_id(job_type), "model.safetensors")
        embeddings = saved["bert.embeddings.word_embeddings.weight"]
        assert torch.allclose(embeddings, source, atol=1e-6) == (job_type == "finetune")
        assert (
            stored(job_id(job_type), "metadata.json")["init"]
            == {"train": "random", "finetune": "pretrained"}[job_type]
        )


def test_generation_loss_falls_with_eos_as_pad(tiny_gpt2, hf_ctx, stored, job_id) -> None:
    ctx = hf_ctx(
        job_id("gen"),
        {
            "model_source": "local",
            "model_path": str(tiny_gpt2),
            "task_type": "generation",
            "epochs": 3,
            "batch_size": 16,
            "learning_rate": 3e-3,
            "data": {"num_samples": 256},
        },
    )
    registered = train_huggingface(ctx)
    ends = epoch_ends(ctx.events)
    assert ends[-1].val_loss < 0.6 * ends[0].val_loss
    assert ends[-1].val_accuracy is not None and ends[-1].val_accuracy > ends[0].val_accuracy
    assert all(e.accuracy is None for e in ctx.events if isinstance(e, JobProgress))
    assert registered.task == "generation" and registered.architecture["num_labels"] is None
    config = stored(job_id("gen"), "config.json")
    assert config["pad_token_id"] == config["eos_token_id"] == 0
    tokenizer_config = stored(job_id("gen"), "tokenizer_config.json")
    assert tokenizer_config["pad_token"] == "<|endoftext|>"


def _train_lora(ctx: Any, folder: Path) -> tuple[Any, torch.Tensor, dict[str, torch.Tensor]]:
    """Run a LoRA job step by step; the trained model's logits and its frozen weights."""
    recipe = HuggingFaceRecipe(ctx)
    try:
        recipe.setup()
        frozen = {
            n: p.detach().clone()
            for n, p in recipe.loop.module.named_parameters()
            if not p.requires_grad
        }
        result = recipe.train()
        trained = recipe.loop.module
        moved = [
            n
            for n, p in trained.named_parameters()
            if not p.requires_grad and not torch.equal(p.detach(), frozen[n])
        ]
        assert moved == [], "frozen base weights changed"
        expected = logits(trained, folder)
        return recipe.save(result), expected, frozen
    finally:
        recipe.cleanup()


def test_lora_trains_only_adapters_and_they_reload_to_identical_outputs(
    tiny_bert, hf_ctx, s3, stored, job_id, tmp_path
) -> None:
    from peft import PeftModel
    from transformers import AutoModelForSequenceClassification

    ctx = hf_ctx(job_id("lora"), classify(tiny_bert, lora={"enabled": True, "r": 4}))
    registered, expected, frozen = _train_lora(ctx, tiny_bert)
    arch = registered.architecture
    assert 0 < arch["trainable_parameters"] < arch["num_parameters"] / 5
    assert any("lora_A" in n for n in frozen) is False
    assert {"adapters/adapter_config.json", "adapters/adapter_model.safetensors"} <= {
        a.path for a in registered.artifacts
    }
    meta = stored(job_id("lora"), "metadata.json")
    assert meta["lora"]["target_modules"] == ["query", "value"] and meta["lora"]["merge"] is False

    folder = download(s3, job_id("lora"), tmp_path / "lora")
    base = AutoModelForSequenceClassification.from_pretrained(folder, use_safetensors=True)
    source = load_file(tiny_bert / "model.safetensors")
    saved = load_file(folder / "model.safetensors")
    for name, weight in source.items():  # the base weights are the source's, untouched
        assert torch.equal(saved[f"bert.{name}"], weight), name
    with_adapters = PeftModel.from_pretrained(base, folder / "adapters")
    assert torch.allclose(logits(with_adapters, folder), expected, atol=1e-6)


def test_lora_merge_bakes_adapters_into_the_weights(
    tiny_bert, hf_ctx, s3, job_id, tmp_path
) -> None:
    from transformers import AutoModelForSequenceClassification

    config = classify(tiny_bert, lora={"enabled": True, "r": 4, "merge": True})
    _, expected, _ = _train_lora(hf_ctx(job_id("merged"), config), tiny_bert)
    folder = download(s3, job_id("merged"), tmp_path / "merged")
    merged = AutoModelForSequenceClassification.from_pretrained(folder, use_safetensors=True)
    assert not any("lora" in n for n, _ in merged.named_parameters())
    assert torch.allclose(logits(merged, folder), expected, atol=1e-5)
    assert (folder / "adapters" / "adapter_model.safetensors").is_file()


def test_finetune_chain_through_a_lora_parent(
    tiny_bert, hf_ctx, s3, stored, job_id, tmp_path
) -> None:
    from peft import PeftModel
    from transformers import AutoModelForSequenceClassification

    p1, p2, p3 = job_id("p1"), job_id("p2"), job_id("p3")
    train_huggingface(hf_ctx(p1, classify(tiny_bert, epochs=1)))
    train_huggingface(
        hf_ctx(
            p2,
            {
                "model_source": "model_id",
                "model_id": p1,
                "epochs": 1,
                "learning_rate": 3e-3,
                "lora": {"enabled": True, "r": 4},
            },
        )
    )
    p2_folder = download(s3, p2, tmp_path / "p2")
    parent = PeftModel.from_pretrained(
        AutoModelForSequenceClassification.from_pretrained(p2_folder), p2_folder / "adapters"
    )
    # A near-zero learning rate: the child must start exactly where the parent ended.
    child = train_huggingface(
        hf_ctx(
            p3,
            {
                "model_source": "model_id",
                "model_id": p2,
                "epochs": 1,
                "learning_rate": 1e-12,
                "data": {"num_samples": 32},
            },
        )
    )
    assert child.base_model_id == p2 and child.lineage == [p2, p1]
    assert stored(p3, "metadata.json")["lineage"] == [p2, p1]
    p3_folder = download(s3, p3, tmp_path / "p3")
    reloaded = AutoModelForSequenceClassification.from_pretrained(p3_folder)
    assert torch.allclose(logits(reloaded, p3_folder), logits(parent, p2_folder), atol=1e-4)


class Killed(Exception):
    """Stands in for SIGKILL: raised from inside the loop, nothing in the recipe handles it."""


def test_resume_after_a_kill_matches_an_uninterrupted_run(
    tiny_bert, hf_ctx, s3, stored, job_id
) -> None:
    config = classify(
        tiny_bert,
        epochs=2,
        checkpoint_every_steps=5,
        data={"num_samples": 160},
        lora={"enabled": True, "r": 4},
    )
    whole_id, killed = job_id("whole"), job_id("killed")
    train_huggingface(hf_ctx(whole_id, config))

    def kill_after_first_checkpoint(event: Any) -> None:
        if isinstance(event, JobProgress) and event.step == 7:
            raise Killed

    with pytest.raises(Killed):
        train_huggingface(hf_ctx(killed, config, emit=kill_after_first_checkpoint))
    assert s3.exists(f"checkpoints/{killed}/latest.pt")
    assert not s3.exists(f"models/{killed}/metadata.json")
    ctx = hf_ctx(killed, config, attempt=2)
    train_huggingface(ctx)
    assert started(ctx.events).resumed_from_epoch == 0
    first = next(e for e in ctx.events if isinstance(e, JobProgress))
    assert (first.epoch, first.step) == (1, 6)  # continues after the step-5 checkpoint
    whole, resumed = stored(whole_id, "model.safetensors"), stored(killed, "model.safetensors")
    for name, weight in whole.items():
        assert torch.allclose(resumed[name], weight, atol=1e-6), name
    resumed_history = stored(killed, "metadata.json")["history"]
    whole_history = stored(whole_id, "metadata.json")["history"]
    assert resumed_history[1] == whole_history[1]
    # The interrupted epoch's train loss covers only its batches after the resume (as in the
    # PyTorch recipe: ResumeState keeps no running sums); validation is over the same weights.
    for key in ("val_loss", "val_accuracy"):
        assert resumed_history[0][key] == pytest.approx(whole_history[0][key], abs=1e-6)


def test_cancel_stops_at_the_next_step_without_a_model(tiny_bert, hf_ctx, s3, job_id) -> None:
    holder: dict[str, Any] = {}

    def cancel_on_progress(event: Any) -> None:
        if isinstance(event, JobProgress):
            holder["ctx"].stop.set("cancel", "user asked")

    ctx = holder["ctx"] = hf_ctx(job_id("cancel"), classify(tiny_bert), emit=cancel_on_progress)
    with pytest.raises(JobCancelledError, match="user asked"):
        train_huggingface(ctx)
    steps = [e.step for e in ctx.events if isinstance(e, JobProgress)]
    assert steps == [1]
    assert not list(s3.list(f"models/{job_id('cancel')}/"))


def test_guide_lora_targets_on_bert_fail_before_training(tiny_bert, hf_ctx, job_id) -> None:
    ctx = hf_ctx(
        job_id("guide-lora"),
        classify(
            tiny_bert,
            lora={
                "enabled": True,
                "r": 8,
                "alpha": 16,
                "dropout": 0.05,
                "target_modules": ["q_proj", "v_proj"],
            },
        ),
    )
    with pytest.raises(TrainingError) as caught:
        train_huggingface(ctx)
    assert str(caught.value) == (
        "lora.target_modules ['q_proj', 'v_proj'] not found in bert model; its attention "
        "projections are named ['query', 'key', 'value'] — use e.g. ['query', 'value'] or "
        "leave target_modules out to use the default"
    )
    assert ctx.events == []


@pytest.mark.parametrize(("asked", "used"), [("bfloat16", "bfloat16"), ("float16", "float32")])
def test_mixed_precision_on_cpu(tiny_bert, hf_ctx, stored, job_id, asked, used) -> None:
    config = classify(tiny_bert, epochs=1, precision=asked, data={"num_samples": 64})
    train_huggingface(hf_ctx(job_id(asked), config))
    meta = stored(job_id(asked), "metadata.json")
    assert meta["precision"] == used and meta["precision_requested"] == asked
    assert bool(meta["warnings"]) == (asked != used)


def test_gradient_accumulation_matches_one_bigger_batch(
    tiny_bert_no_dropout, hf_ctx, stored, job_id
) -> None:
    common = {"epochs": 1, "data": {"num_samples": 80}, "learning_rate": 1e-3, "optimizer": "sgd"}
    train_huggingface(
        hf_ctx(job_id("big"), classify(tiny_bert_no_dropout, batch_size=16, **common))
    )
    train_huggingface(
        hf_ctx(
            job_id("acc"),
            classify(tiny_bert_no_dropout, batch_size=8, gradient_accumulation_steps=2, **common),
        )
    )
    big, acc = (stored(job_id(m), "model.safetensors") for m in ("big", "acc"))
    assert stored(job_id("acc"), "metadata.json")["metrics"]["steps"] == 4.0
    for name, weight in big.items():
        assert torch.allclose(acc[name], weight, atol=1e-5), name


def test_real_minilm_lora_finetune_learns(minilm, hf_ctx, stored, job_id) -> None:
    ctx = hf_ctx(
        job_id("minilm"),
        {
            "model_source": "local",
            "model_path": str(minilm),
            "epochs": 2,
            "batch_size": 16,
            "learning_rate": 2e-3,
            "max_length": 24,
            "data": {"num_samples": 160},
            "lora": {"enabled": True},
        },
    )
    registered = train_huggingface(ctx)
    assert registered.metrics["val_accuracy"] >= 0.8
    assert stored(job_id("minilm"), "metadata.json")["lora"]["target_modules"] == ["query", "value"]


def test_gpt2_lora_defaults_to_c_attn_and_a_child_finetunes_from_it(
    tiny_gpt2, hf_ctx, stored, job_id
):
    lora = job_id("gpt2-lora")
    common = {"task_type": "generation", "epochs": 1, "batch_size": 16, "learning_rate": 3e-3,
              "data": {"num_samples": 96}}  # fmt: skip
    ctx = hf_ctx(lora, {"model_source": "local", "model_path": str(tiny_gpt2),
                        "lora": {"enabled": True}, **common})  # fmt: skip
    parent = train_huggingface(ctx)
    assert stored(lora, "metadata.json")["lora"]["target_modules"] == ["c_attn"]
    assert parent.architecture["trainable_parameters"] < parent.architecture["num_parameters"] / 5
    child_config = {"model_source": "model_id", "model_id": lora, **common}
    child = train_huggingface(hf_ctx(job_id("gpt2-child"), child_config))
    assert child.lineage == [lora] and child.task == "generation"


def test_freeze_layers_trains_only_the_head(tiny_bert, tiny_gpt2, hf_ctx, job_id) -> None:
    head_only = classify(tiny_bert, epochs=1, freeze_layers=True, data={"num_samples": 32})
    registered = train_huggingface(hf_ctx(job_id("frozen"), head_only))
    assert registered.architecture["trainable_parameters"] == 32 * 2 + 2  # classifier only
    frozen_gen = {"model_source": "local", "model_path": str(tiny_gpt2),
                  "task_type": "generation", "freeze_layers": True}  # fmt: skip
    ctx = hf_ctx(job_id("frozen-gen"), frozen_gen)
    with pytest.raises(TrainingError, match=r"use lora\.enabled instead"):
        train_huggingface(ctx)
