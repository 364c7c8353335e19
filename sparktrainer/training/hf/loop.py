"""The Hugging Face training loop of one process (the only one, or one DDP rank).

It keeps the PyTorch ``Trainer``'s contract so the same launcher runs it: a picklable plan
in, ``Hooks`` out (rank 0 reports and checkpoints; every rank votes on stopping each step),
``ResumeState`` checkpoints with the same epoch / step / batch_in_epoch meaning, and a
``TrainResult`` back. What differs: batches are padded token ids, the model computes its
own loss, and a fine-tune checkpoints only its trainable weights (the rest is the source).
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch
import torch.distributed as dist
from torch import nn

from sparktrainer.contracts.jobspec import HuggingFaceConfig
from sparktrainer.errors import SparkTrainerError, TrainingError
from sparktrainer.training.checkpoint import ResumeState, capture_rng, restore_rng
from sparktrainer.training.hf import data as text
from sparktrainer.training.hf.lora import apply_lora
from sparktrainer.training.hf.models import ModelSource, load_model, load_tokenizer
from sparktrainer.training.loop import (
    MetricSum,
    ProgressClock,
    build_optimizer,
    build_scheduler,
    check_finite,
    resolve_precision,
    seed_everything,
)
from sparktrainer.training.trainer import Hooks, Rank, StopRequested, TrainResult


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


class HFTrainer:
    """One process's loop: epochs of steps, validation, checkpoints, progress, stop votes."""

    def __init__(self, plan: HFPlan, hooks: Hooks, where: Rank) -> None:
        opts = plan.options
        self.plan, self.opts, self.hooks, self.where = plan, opts, hooks, where
        model, self.tokenizer = build_model(plan)
        self.module: nn.Module = model.to(where.device)
        self.model: nn.Module = self.module
        if where.world > 1:
            ids = [where.device.index] if where.device.type == "cuda" else None
            self.model = nn.parallel.DistributedDataParallel(self.module, device_ids=ids)
        self.precision = resolve_precision(opts.precision, where.device)
        self.optimizer = build_optimizer(
            (p for p in self.module.parameters() if p.requires_grad), opts
        )
        self.pad_id = int(self.tokenizer.pad_token_id)
        self.train_set = text.encode(
            self.tokenizer, plan.data.train_texts, plan.data.train_labels, opts.max_length
        )
        self.val_set = text.encode(
            self.tokenizer, plan.data.val_texts, plan.data.val_labels, opts.max_length
        )
        if not len(self.train_set):
            raise TrainingError("the training split is empty: add data or lower validation_split")
        self.per_rank = max(1, opts.batch_size // where.world)
        self.n_batches = len(self._batches(0))
        self.accum = opts.gradient_accumulation_steps
        self.total_steps = opts.epochs * math.ceil(self.n_batches / self.accum)
        self.scheduler = build_scheduler(self.optimizer, opts, self.total_steps)
        self.epoch = self.step = self.batch_in_epoch = 0
        self.history: list[dict[str, float]] = []
        if plan.resume is not None:
            self._restore(plan.resume)
        self.clock = ProgressClock(plan.progress_every_s, self.total_steps, self.step)

    def _batches(self, epoch: int) -> list[list[int]]:
        return text.epoch_batches(
            len(self.train_set),
            self.per_rank,
            epoch,
            self.opts.seed,
            rank=self.where.rank,
            world=self.where.world,
        )

    # -- the loop ----------------------------------------------------------------------

    def fit(self) -> TrainResult:
        """Train the remaining epochs and return the final state."""
        for epoch in range(self.epoch, self.opts.epochs):
            meter = self._train_epoch(epoch)
            self._end_epoch(epoch, meter)
        return self._result()

    def _train_epoch(self, epoch: int) -> MetricSum:
        self.model.train()
        meter = MetricSum(self.where.device)
        batches = self._batches(epoch)
        n = len(batches)
        for i in range(self.batch_in_epoch, n):
            self._check_stop()
            group_start = i - i % self.accum
            group = min(self.accum, n - group_start)
            last = i + 1 - group_start == group
            batch = text.collate(self.train_set, batches[i], self.pad_id, self.opts.task_type)
            self._forward_backward(batch, group, sync=last, meter=meter)
            if last:
                self._optimizer_step()
                self.batch_in_epoch = i + 1
                self._after_step(epoch, meter)
        return meter

    def _forward_backward(
        self, batch: dict[str, torch.Tensor], group: int, *, sync: bool, meter: MetricSum
    ) -> None:
        rows = batch["input_ids"].shape[0]
        count = self._count(batch["labels"])
        batch = {k: v.to(self.where.device, non_blocking=True) for k, v in batch.items()}
        with self.precision.autocast():
            out = self.model(**batch)
        loss = out.loss
        if sync or self.where.world == 1:
            self.precision.backward(loss / group if group > 1 else loss)
        else:
            with self.model.no_sync():  # type: ignore[operator]
                self.precision.backward(loss / group)
        correct = None
        if self.opts.task_type == "classification":
            correct = (out.logits.detach().argmax(-1) == batch["labels"]).sum()
        meter.add(loss, count, correct)
        self.clock.add(rows * self.where.world)

    def _count(self, labels: torch.Tensor) -> int:
        """What a loss is averaged over: rows, or predicted tokens (on the CPU: no sync)."""
        if self.opts.task_type == "classification":
            return int(labels.shape[0])
        return int((labels[:, 1:] != -100).sum())

    def _optimizer_step(self) -> None:
        self.precision.step(self.optimizer)
        self.optimizer.zero_grad(set_to_none=True)
        self.scheduler.step()
        self.step += 1

    def _after_step(self, epoch: int, meter: MetricSum) -> None:
        every = self.plan.checkpoint_every_steps
        if every and self.step % every == 0 and self.batch_in_epoch < self.n_batches:
            self._checkpoint()
        if self.where.rank == 0 and self.clock.due():
            loss, accuracy = self._means(meter)
            check_finite(loss, "training loss", f"epoch {epoch + 1}, step {self.step}")
            self.hooks.progress(epoch=epoch + 1, loss=loss, accuracy=accuracy, **self._position())

    def _check_stop(self) -> None:
        if self.where.control is None:
            self.hooks.check_stop()
            return
        pending: SparkTrainerError | None = None
        try:
            self.hooks.check_stop()
        except SparkTrainerError as e:
            pending = e
        vote = torch.tensor([1 if pending else 0])
        dist.all_reduce(vote, op=dist.ReduceOp.MAX, group=self.where.control)
        if vote.item():
            raise pending or StopRequested("another rank stopped")

    def _means(
        self, meter: MetricSum, reduced: torch.Tensor | None = None
    ) -> tuple[float | None, float | None]:
        loss, accuracy = meter.means(reduced)
        return loss, accuracy if self.opts.task_type == "classification" else None

    # -- epoch end ---------------------------------------------------------------------

    def _end_epoch(self, epoch: int, meter: MetricSum) -> None:
        loss, accuracy = self._means(meter, self._reduce(meter.as_tensor()))
        check_finite(loss, "training loss", f"epoch {epoch + 1}")
        val_loss, val_accuracy = self.evaluate()
        check_finite(val_loss, "validation loss", f"epoch {epoch + 1}")
        record = {
            "epoch": float(epoch + 1),
            "loss": loss,
            "accuracy": accuracy,
            "val_loss": val_loss,
            "val_accuracy": val_accuracy,
            "learning_rate": self.optimizer.param_groups[0]["lr"],
        }
        self.history.append({k: v for k, v in record.items() if v is not None})
        self.epoch, self.batch_in_epoch = epoch + 1, 0
        self._checkpoint()
        if self.where.rank == 0:
            self.hooks.progress(
                epoch=epoch + 1,
                loss=loss,
                accuracy=accuracy,
                val_loss=val_loss,
                val_accuracy=val_accuracy,
                **self._position(),
            )

    @torch.no_grad()
    def evaluate(self) -> tuple[float | None, float | None]:
        """Validation loss and accuracy (token accuracy for generation), all ranks together."""
        where, val = self.where, self.val_set
        rows = sorted(range(len(val)), key=lambda i: len(val.input_ids[i]))[
            where.rank :: where.world
        ]
        meter = MetricSum(where.device)
        self.module.eval()
        for start in range(0, len(rows), self.per_rank):
            batch = text.collate(
                val, rows[start : start + self.per_rank], self.pad_id, self.opts.task_type
            )
            count = self._count(batch["labels"])
            batch = {k: v.to(where.device, non_blocking=True) for k, v in batch.items()}
            with self.precision.autocast():
                out = self.module(**batch)
            meter.add(out.loss, count, _correct(out.logits, batch["labels"], self.opts.task_type))
        return meter.means(self._reduce(meter.as_tensor()))

    def _reduce(self, sums: torch.Tensor) -> torch.Tensor:
        if self.where.world > 1:
            dist.all_reduce(sums)
        return sums

    def _position(self) -> dict[str, Any]:
        return {
            "total_epochs": self.opts.epochs,
            "step": self.step,
            "total_steps": self.total_steps,
            "learning_rate": self.optimizer.param_groups[0]["lr"],
            **self.clock.rates(self.step),
        }

    # -- state -------------------------------------------------------------------------

    def resume_state(self) -> ResumeState:
        """Where the loop stands now, as a checkpoint."""
        scaler = self.precision.scaler
        return ResumeState(
            epoch=self.epoch,
            step=self.step,
            batch_in_epoch=self.batch_in_epoch,
            model=model_state(self.module, self.plan.partial_state),
            optimizer=self.optimizer.state_dict(),
            scheduler=self.scheduler.state_dict(),
            scaler=scaler.state_dict() if scaler is not None else None,
            rng=capture_rng(),
            history=list(self.history),
        )

    def _checkpoint(self) -> None:
        if self.where.rank != 0:
            return
        path = self.plan.workdir / f"resume-{self.step}.pt"
        self.hooks.checkpoint(self.resume_state().save(path), self.epoch, self.step)

    def _restore(self, state: ResumeState) -> None:
        load_model_state(self.module, state.model, "the checkpoint")
        self.optimizer.load_state_dict(state.optimizer)
        if state.scheduler is not None:
            self.scheduler.load_state_dict(state.scheduler)
        if state.scaler is not None and self.precision.scaler is not None:
            self.precision.scaler.load_state_dict(state.scaler)
        restore_rng(state.rng)
        self.epoch, self.step, self.batch_in_epoch = state.epoch, state.step, state.batch_in_epoch
        self.history = list(state.history)

    def _result(self) -> TrainResult:
        last = self.history[-1] if self.history else {}
        metrics = {k: v for k, v in last.items() if k != "epoch"}
        metrics["epochs"] = float(self.epoch)
        metrics["steps"] = float(self.step)
        warning = self.precision.warning
        return TrainResult(
            # Only a DDP launcher needs the weights back; in-process, the recipe has the model.
            model_state=_cpu_copy(model_state(self.module, self.plan.partial_state))
            if self.where.world > 1
            else {},
            optimizer_state={},
            epochs=self.epoch,
            step=self.step,
            history=self.history,
            metrics=metrics,
            best_model=None,
            best_epoch=None,
            precision=self.precision.name,
            warnings=[warning] if warning else [],
        )


def _correct(logits: torch.Tensor, labels: torch.Tensor, task: str) -> torch.Tensor:
    if task == "classification":
        return (logits.argmax(-1) == labels).sum()
    target = labels[:, 1:]
    return ((logits[:, :-1].argmax(-1) == target) & (target != -100)).sum()


def _cpu_copy(state: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
    return {k: v.detach().to("cpu", copy=True) for k, v in state.items()}
