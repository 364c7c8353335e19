"""The Hugging Face recipe's side of the loop: its plan, its model, and its text step.

The one ``TrainingLoop`` (``training/loop/``) runs it in this process or on DDP ranks.
What is particular to transformers: batches are padded token ids, the model computes its
own loss, and a fine-tune checkpoints only its trainable weights (the rest is the source).
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch
from torch import nn

from sparktrainer.contracts.jobspec import HuggingFaceConfig
from sparktrainer.errors import TrainingError
from sparktrainer.training.checkpoint import ResumeState
from sparktrainer.training.hf import data as text
from sparktrainer.training.hf.lora import apply_lora
from sparktrainer.training.hf.models import ModelSource, load_model, load_tokenizer
from sparktrainer.training.loop.device import seed_everything
from sparktrainer.training.loop.plan import Rank, Scored

Batch = dict[str, torch.Tensor]


@dataclass
class HFPlan:
    """Everything one HF training process needs; picklable, so DDP ranks can receive it."""

    options: HuggingFaceConfig
    job_type: str
    source: ModelSource
    data: text.TextData
    workdir: Path
    resume: ResumeState | None = None
    checkpoint_every_steps: int = 0
    progress_every_s: float = 1.0

    @property
    def partial_state(self) -> bool:
        """A fine-tune saves only trainable weights: frozen ones reload from the source."""
        return self.job_type == "finetune"

    def prepare(self, where: Rank, batch_size: int) -> tuple[nn.Module, TextStep]:
        """The model built and placed on this rank's device; its tokenized batches."""
        model, tokenizer = build_model(self)
        module: nn.Module = model.to(where.device)
        return module, TextStep(self, tokenizer, batch_size, where)


def build_model(plan: HFPlan) -> tuple[Any, Any]:
    """(model, tokenizer) ready to train: loaded, labelled, LoRA-wrapped or frozen as asked."""
    opts = plan.options
    seed_everything(opts.seed)
    tokenizer = load_tokenizer(plan.source.directory, plan.source.name)
    model = load_model(
        plan.source,
        opts,
        plan.job_type,
        tokenizer,
        safetensors_only=opts.model_source == "model_id",
    )
    names = plan.data.label_names
    if opts.task_type == "classification" and names:
        model.config.id2label = dict(enumerate(names))
        model.config.label2id = {n: i for i, n in enumerate(names)}
    if opts.lora.enabled:
        model = apply_lora(model, opts.lora, opts.task_type, plan.source.name)
    elif opts.freeze_layers:
        freeze_backbone(model, opts.task_type)
    return model, tokenizer


def freeze_backbone(model: Any, task: str) -> None:
    """Train only what sits outside the backbone (the task head)."""
    for p in model.base_model.parameters():
        p.requires_grad_(False)
    if not any(p.requires_grad for p in model.parameters()):
        raise TrainingError(
            f"freeze_layers leaves nothing to train in a {model.config.model_type} {task} model "
            "(its head is tied to the frozen embeddings); use lora.enabled instead"
        )


def model_state(module: nn.Module, partial: bool) -> dict[str, torch.Tensor]:
    """The weights a checkpoint needs: trainable ones for a fine-tune, all for a new model."""
    if not partial:
        return module.state_dict()
    return {n: p.detach() for n, p in module.named_parameters() if p.requires_grad}


def load_model_state(module: nn.Module, state: dict[str, torch.Tensor], what: str) -> None:
    """Load a (possibly partial) state; every trainable weight must be in it."""
    missing, unexpected = module.load_state_dict(state, strict=False)
    trainable = {n for n, p in module.named_parameters() if p.requires_grad}
    lost = sorted(set(missing) & trainable)
    if unexpected or lost:
        raise TrainingError(
            f"{what} does not fit this model (unexpected {unexpected[:3]}, missing {lost[:3]}); "
            "was the job's config changed?"
        )


class TextStep:
    """Padded token batches for a transformers model that computes its own loss."""

    full_result = False  # the recipe saves the model it trained (save_pretrained)

    def __init__(self, plan: HFPlan, tokenizer: Any, batch_size: int, where: Rank) -> None:
        opts, data = plan.options, plan.data
        self.tokenizer, self.task, self.seed = tokenizer, opts.task_type, opts.seed
        self.partial, self.batch_size, self.where = plan.partial_state, batch_size, where
        self.pad_id = int(tokenizer.pad_token_id)
        self.train = text.encode_texts(
            tokenizer, data.train_texts, data.train_labels, opts.max_length
        )
        self.val = text.encode_texts(tokenizer, data.val_texts, data.val_labels, opts.max_length)
        if not len(self.train):
            raise TrainingError("the training split is empty: add data or lower validation_split")
        self.n_batches = len(self._rows(0))

    def _rows(self, epoch: int) -> list[list[int]]:
        """This rank's batches of ``epoch``, as row numbers (the order depends on seed, epoch)."""
        rank, world = self.where.rank, self.where.world
        n = len(self.train)
        return text.epoch_batches(n, self.batch_size, epoch, self.seed, rank=rank, world=world)

    def __len__(self) -> int:
        return self.n_batches

    def batches(self, epoch: int, start: int) -> Iterator[Batch]:
        """This rank's batches of ``epoch`` from number ``start`` on, padded, on the CPU."""
        rows = self._rows(epoch)
        for i in range(start, len(rows)):
            yield text.collate(self.train, rows[i], self.pad_id, self.task)

    def forward(self, model: nn.Module, batch: Batch) -> Scored:
        """The model's loss; right answers for classification only (no per-step LM argmax)."""
        return self._score(model, batch, count_correct=self.task == "classification")

    def val_batches(self) -> Iterator[Batch]:
        """This rank's share of the validation texts, by length (less padding)."""
        val, where = self.val, self.where
        rows = sorted(range(len(val)), key=lambda i: len(val.input_ids[i]))
        mine = rows[where.rank :: where.world]
        for start in range(0, len(mine), self.batch_size):
            yield text.collate(val, mine[start : start + self.batch_size], self.pad_id, self.task)

    def evaluate(self, module: nn.Module, batch: Batch) -> Scored:
        """The loss and accuracy (token accuracy for generation)."""
        return self._score(module, batch, count_correct=True)

    def _score(self, model: nn.Module, batch: Batch, *, count_correct: bool) -> Scored:
        rows, count = batch["input_ids"].shape[0], self._count(batch["labels"])
        batch = {k: v.to(self.where.device, non_blocking=True) for k, v in batch.items()}
        out = model(**batch)
        correct = None
        if count_correct:
            correct = _correct(out.logits.detach(), batch["labels"], self.task)
        return Scored(out.loss, count, correct, rows)

    def _count(self, labels: torch.Tensor) -> int:
        """What a loss is averaged over: rows, or predicted tokens (on the CPU: no sync)."""
        if self.task == "classification":
            return int(labels.shape[0])
        return int((labels[:, 1:] != -100).sum())

    def weights(self, module: nn.Module) -> dict[str, torch.Tensor]:
        """Trainable weights for a fine-tune, all for a new model."""
        return model_state(module, self.partial)

    def load_weights(self, module: nn.Module, state: dict[str, torch.Tensor]) -> None:
        """Load a checkpoint's (possibly partial) weights."""
        load_model_state(module, state, "the checkpoint")


def _correct(logits: torch.Tensor, labels: torch.Tensor, task: str) -> torch.Tensor:
    if task == "classification":
        return (logits.argmax(-1) == labels).sum()
    target = labels[:, 1:]
    return ((logits[:, :-1].argmax(-1) == target) & (target != -100)).sum()
