"""The classification training loop of one process (the only one, or one DDP rank).

It knows nothing of S3 or Kafka: it gets a ``TrainPlan`` (model, data, options, resume
state) and talks back through ``Hooks`` (stop checks, progress, checkpoint files).
Rank 0 alone reports and checkpoints; every rank agrees on stopping at the same step.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Protocol

import torch
import torch.distributed as dist
import torch.nn.functional as F
from torch import nn

from sparktrainer.contracts.jobspec import TrainingOptions
from sparktrainer.errors import SparkTrainerError
from sparktrainer.training.architectures import keep_frozen_norms_in_eval
from sparktrainer.training.checkpoint import ResumeState, capture_rng, restore_rng
from sparktrainer.training.data import Batches, SplitData
from sparktrainer.training.loop import (
    MetricSum,
    ProgressClock,
    build_optimizer,
    build_scheduler,
    check_finite,
    resolve_precision,
    seed_everything,
)


class Hooks(Protocol):
    """How the loop talks to the job: rank 0 gets the real ones, other ranks ``NoHooks``."""

    def check_stop(self) -> None: ...
    def progress(self, **fields: Any) -> None: ...
    def checkpoint(self, path: Path, epoch: int, step: int) -> None: ...


class NoHooks:
    """Hooks of a non-reporting rank."""

    def check_stop(self) -> None:
        return None

    def progress(self, **fields: Any) -> None:
        return None

    def checkpoint(self, path: Path, epoch: int, step: int) -> None:
        path.unlink(missing_ok=True)


@dataclass
class TrainPlan:
    """Everything one training process needs; picklable so DDP ranks can receive it."""

    options: TrainingOptions
    model: nn.Module
    data: SplitData
    workdir: Path
    trainable: list[str]
    resume: ResumeState | None = None
    checkpoint_every_steps: int = 0
    progress_every_s: float = 1.0


@dataclass
class Rank:
    """Where this process sits: its rank, the world size, its device, the stop-vote group."""

    rank: int = 0
    world: int = 1
    device: torch.device = field(default_factory=lambda: torch.device("cpu"))
    control: Any = None  # a gloo process group for stop votes (None: single process)


class StopRequested(SparkTrainerError):
    """Another rank (or the launcher) asked every rank to stop at this step."""


def check_stop_together(hooks: Hooks, where: Rank) -> None:
    """``hooks.check_stop()``; under DDP every rank votes, so all stop at the same step.

    A rank that stopped alone would leave the others waiting in a collective forever.
    """
    if where.control is None:
        hooks.check_stop()
        return
    pending: SparkTrainerError | None = None
    try:
        hooks.check_stop()
    except SparkTrainerError as e:
        pending = e
    vote = torch.tensor([1 if pending else 0])
    dist.all_reduce(vote, op=dist.ReduceOp.MAX, group=where.control)
    if vote.item():
        raise pending or StopRequested("another rank stopped")


@dataclass
class TrainResult:
    """The trained state and its record; plain values and tensors (weights-only saveable)."""

    model_state: dict[str, torch.Tensor]
    optimizer_state: dict[str, Any]
    epochs: int
    step: int
    history: list[dict[str, float]]
    metrics: dict[str, float]
    best_model: dict[str, torch.Tensor] | None
    best_epoch: int | None
    precision: str
    warnings: list[str]


class Trainer:
    """One process's loop: epochs of steps, validation, best model, checkpoints, progress."""

    def __init__(self, plan: TrainPlan, hooks: Hooks, where: Rank) -> None:
        self.plan, self.opts, self.hooks, self.where = plan, plan.options, hooks, where
        seed_everything(self.opts.seed)
        self.module, self.model = self._place_model()
        self.frozen = len(plan.trainable) < len(list(self.module.parameters()))
        self.precision = resolve_precision(self.opts.precision, where.device)
        self.optimizer = build_optimizer(
            (p for p in self.module.parameters() if p.requires_grad), self.opts
        )
        per_rank = max(1, self.opts.batch_size // where.world)  # batch_size is the global batch
        self.warnings = [w for w in (self.precision.warning,) if w]
        if per_rank * where.world != self.opts.batch_size:
            self.warnings.append(
                f"batch_size {self.opts.batch_size} is not a multiple of the {where.world} "
                f"DDP ranks: each rank used {per_rank} (global batch {per_rank * where.world})"
            )
        self.batches = Batches(
            plan.data.x_train,
            plan.data.y_train,
            per_rank,
            seed=self.opts.seed,
            rank=where.rank,
            world=where.world,
            device=where.device,
        )
        self.accum = self.opts.gradient_accumulation_steps
        self.total_steps = self.opts.epochs * math.ceil(len(self.batches) / self.accum)
        self.scheduler = build_scheduler(self.optimizer, self.opts, self.total_steps)
        self.epoch = self.step = self.batch_in_epoch = 0
        self.best: tuple[float, int, dict[str, torch.Tensor]] | None = None
        self.history: list[dict[str, float]] = []
        if plan.resume is not None:
            self._restore(plan.resume)
        self.clock = ProgressClock(plan.progress_every_s, self.total_steps, self.step)

    def _place_model(self) -> tuple[nn.Module, nn.Module]:
        """The model on this rank's device, only ``plan.trainable`` trainable; and its DDP wrap."""
        module = self.plan.model.to(self.where.device)
        trainable = set(self.plan.trainable)
        for name, p in module.named_parameters():
            p.requires_grad_(name in trainable)
        if self.where.world == 1:
            return module, module
        ids = [self.where.device.index] if self.where.device.type == "cuda" else None
        return module, nn.parallel.DistributedDataParallel(module, device_ids=ids)

    # -- the loop ----------------------------------------------------------------------

    def fit(self) -> TrainResult:
        """Train the remaining epochs and return the final state."""
        for epoch in range(self.epoch, self.opts.epochs):
            meter = self._train_epoch(epoch)
            self._end_epoch(epoch, meter)
        return self._result()

    def _train_epoch(self, epoch: int) -> MetricSum:
        self.model.train()
        if self.frozen:
            keep_frozen_norms_in_eval(self.module)
        meter = MetricSum(self.where.device)
        self.clock.restart_window()
        n = len(self.batches)
        for i, (x, y) in enumerate(
            self.batches.epoch(epoch, self.batch_in_epoch), start=self.batch_in_epoch
        ):
            self._check_stop()
            group_start = i - i % self.accum
            group = min(self.accum, n - group_start)
            last = i + 1 - group_start == group
            self._forward_backward(x, y, group, sync=last, meter=meter)
            if last:
                self._optimizer_step()
                self.batch_in_epoch = i + 1
                self._after_step(epoch, meter)
        return meter

    def _forward_backward(
        self, x: torch.Tensor, y: torch.Tensor, group: int, *, sync: bool, meter: MetricSum
    ) -> None:
        with self.precision.autocast():
            logits = self.model(x)
            loss = F.cross_entropy(logits, y)
        if sync or self.where.world == 1:
            self.precision.backward(loss / group if group > 1 else loss)
        else:
            with self.model.no_sync():  # type: ignore[operator]
                self.precision.backward(loss / group)
        meter.add(loss, y.shape[0], (logits.argmax(1) == y).sum())
        self.clock.add(y.shape[0] * self.where.world)

    def _optimizer_step(self) -> None:
        self.precision.step(self.optimizer)
        self.optimizer.zero_grad(set_to_none=True)
        self.scheduler.step()
        self.step += 1

    def _after_step(self, epoch: int, meter: MetricSum) -> None:
        every = self.plan.checkpoint_every_steps
        if every and self.step % every == 0 and self.batch_in_epoch < len(self.batches):
            self._checkpoint()
        if self.where.rank == 0 and self.clock.due():
            loss, accuracy = meter.means()
            check_finite(loss, "training loss", f"epoch {epoch + 1}, step {self.step}")
            self.hooks.progress(epoch=epoch + 1, loss=loss, accuracy=accuracy, **self._position())

    def _check_stop(self) -> None:
        check_stop_together(self.hooks, self.where)

    # -- epoch end ---------------------------------------------------------------------

    def _end_epoch(self, epoch: int, meter: MetricSum) -> None:
        position = self._position()  # before validation: samples/s counts training only
        loss, accuracy = meter.means(self._reduce(meter.as_tensor()))
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
        score = val_loss if val_loss is not None else loss
        if (
            self.where.rank == 0
            and score is not None
            and (self.best is None or score < self.best[0])
        ):
            self.best = (score, epoch + 1, _cpu_copy(self.module.state_dict()))
        self.epoch, self.batch_in_epoch = epoch + 1, 0
        self._checkpoint()
        if self.where.rank == 0:
            self.hooks.progress(
                epoch=epoch + 1,
                loss=loss,
                accuracy=accuracy,
                val_loss=val_loss,
                val_accuracy=val_accuracy,
                **position,
            )

    @torch.no_grad()
    def evaluate(self) -> tuple[float | None, float | None]:
        """Validation loss and accuracy over the whole validation split (all ranks together)."""
        data, where = self.plan.data, self.where
        x_val, y_val = data.x_val[where.rank :: where.world], data.y_val[where.rank :: where.world]
        meter = MetricSum(where.device)
        self.module.eval()
        size = max(1, self.opts.batch_size)
        for start in range(0, len(x_val), size):
            x = x_val[start : start + size].to(where.device, non_blocking=True)
            y = y_val[start : start + size].to(where.device, non_blocking=True)
            with self.precision.autocast():
                logits = self.module(x)
                loss = F.cross_entropy(logits.float(), y)
            meter.add(loss, y.shape[0], (logits.argmax(1) == y).sum())
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
        best_loss, best_epoch, best_model = self.best or (None, None, None)
        scaler = self.precision.scaler
        return ResumeState(
            epoch=self.epoch,
            step=self.step,
            batch_in_epoch=self.batch_in_epoch,
            model=self.module.state_dict(),
            optimizer=self.optimizer.state_dict(),
            scheduler=self.scheduler.state_dict(),
            scaler=scaler.state_dict() if scaler is not None else None,
            rng=capture_rng(),
            best_val_loss=best_loss,
            best_epoch=best_epoch,
            best_model=best_model,
            history=list(self.history),
        )

    def _checkpoint(self) -> None:
        if self.where.rank != 0:
            return
        path = self.plan.workdir / f"resume-{self.step}.pt"
        self.hooks.checkpoint(self.resume_state().save(path), self.epoch, self.step)

    def _restore(self, state: ResumeState) -> None:
        self.module.load_state_dict(state.model)
        self.optimizer.load_state_dict(state.optimizer)
        if state.scheduler is not None:
            self.scheduler.load_state_dict(state.scheduler)
        if state.scaler is not None and self.precision.scaler is not None:
            self.precision.scaler.load_state_dict(state.scaler)
        restore_rng(state.rng)
        self.epoch, self.step, self.batch_in_epoch = state.epoch, state.step, state.batch_in_epoch
        self.history = list(state.history)
        if state.best_model is not None and state.best_val_loss is not None:
            self.best = (state.best_val_loss, state.best_epoch or state.epoch, state.best_model)

    def _result(self) -> TrainResult:
        last = self.history[-1] if self.history else {}
        metrics = {k: v for k, v in last.items() if k != "epoch"}
        metrics["epochs"] = float(self.epoch)
        if self.best is not None and "val_loss" in last:  # else "best" went by training loss
            metrics["best_val_loss"] = self.best[0]
        return TrainResult(
            model_state=_cpu_copy(self.module.state_dict()),
            optimizer_state=self.optimizer.state_dict(),
            epochs=self.epoch,
            step=self.step,
            history=self.history,
            metrics=metrics,
            best_model=self.best[2] if self.best else None,
            best_epoch=self.best[1] if self.best else None,
            precision=self.precision.name,
            warnings=self.warnings,
        )


def _cpu_copy(state: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
    return {k: v.detach().to("cpu", copy=True) for k, v in state.items()}
