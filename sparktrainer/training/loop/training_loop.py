"""``TrainingLoop``: the training loop of one process (the only one, or one DDP rank).

Every recipe runs this one loop. It knows nothing of S3, Kafka or a model's type: a
``Plan`` brings the model and its ``BatchStep``, and the loop talks back through ``Hooks``
(stop checks, progress, checkpoint files). Rank 0 alone reports and checkpoints; every rank
agrees on stopping at the same step.
"""

from __future__ import annotations

import math
from typing import Any

import torch
import torch.distributed as dist
from torch import nn

from sparktrainer.errors import JobPreemptedError
from sparktrainer.training.checkpoint import ResumeState, capture_rng, restore_rng
from sparktrainer.training.loop.clock import ProgressClock
from sparktrainer.training.loop.device import peak_memory_bytes
from sparktrainer.training.loop.metrics import MetricSum, check_finite
from sparktrainer.training.loop.optim import build_optimizer, build_scheduler
from sparktrainer.training.loop.plan import Hooks, Plan, Rank, TrainResult
from sparktrainer.training.loop.precision import resolve_precision
from sparktrainer.training.loop.stop_vote import check_stop_together


class TrainingLoop:
    """One process's loop: epochs of steps, validation, best model, checkpoints, progress."""

    def __init__(self, plan: Plan, hooks: Hooks, where: Rank) -> None:
        self.plan, self.opts, self.hooks, self.where = plan, plan.options, hooks, where
        per_rank = max(1, self.opts.batch_size // where.world)  # batch_size is the global batch
        self.module, self.batch_step = plan.prepare(where, per_rank)
        self.model = self._wrap(self.module)
        self.frozen = not all(p.requires_grad for p in self.module.parameters())
        self.precision = resolve_precision(self.opts.precision, where.device)
        self.optimizer = build_optimizer(
            (p for p in self.module.parameters() if p.requires_grad), self.opts
        )
        self.warnings = [w for w in (self.precision.warning,) if w]
        if per_rank * where.world != self.opts.batch_size:
            self.warnings.append(
                f"batch_size {self.opts.batch_size} is not a multiple of the {where.world} "
                f"DDP ranks: each rank used {per_rank} (global batch {per_rank * where.world})"
            )
        self.accum = self.opts.gradient_accumulation_steps
        self.total_steps = self.opts.epochs * math.ceil(len(self.batch_step) / self.accum)
        self.scheduler = build_scheduler(self.optimizer, self.opts, self.total_steps)
        self.epoch = self.step = self.batch_in_epoch = 0
        self.best: tuple[float, int, dict[str, torch.Tensor]] | None = None
        self.history: list[dict[str, float]] = []
        if plan.resume is not None:
            self._restore(plan.resume)
        self.clock = ProgressClock(plan.progress_every_s, self.total_steps, self.step)

    def _wrap(self, module: nn.Module) -> nn.Module:
        """The module itself, or its DDP wrap on more than one rank."""
        if self.where.world == 1:
            return module
        ids = [self.where.device.index] if self.where.device.type == "cuda" else None
        return nn.parallel.DistributedDataParallel(module, device_ids=ids)

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
        n, start = len(self.batch_step), self.batch_in_epoch
        for i, batch in enumerate(self.batch_step.batches(epoch, start), start=start):
            self.hooks.beat(self.step)
            self._check_stop()
            group_start = i - i % self.accum
            group = min(self.accum, n - group_start)
            last = i + 1 - group_start == group
            self._forward_backward(batch, group, sync=last, meter=meter)
            if last:
                self._optimizer_step()
                self.batch_in_epoch = i + 1
                self._after_step(epoch, meter)
        return meter

    def _forward_backward(self, batch: Any, group: int, *, sync: bool, meter: MetricSum) -> None:
        with self.precision.autocast():
            scored = self.batch_step.forward(self.model, batch)
        loss = scored.loss
        if sync or self.where.world == 1:
            self.precision.backward(loss / group if group > 1 else loss)
        else:
            with self.model.no_sync():  # type: ignore[operator]
                self.precision.backward(loss / group)
        meter.add(loss, scored.count, scored.correct)
        self.clock.add(scored.rows * self.where.world)

    def _optimizer_step(self) -> None:
        self.precision.step(self.optimizer)
        self.optimizer.zero_grad(set_to_none=True)
        self.scheduler.step()
        self.step += 1

    def _after_step(self, epoch: int, meter: MetricSum) -> None:
        every = self.plan.checkpoint_every_steps
        if every and self.step % every == 0 and self.batch_in_epoch < len(self.batch_step):
            self._checkpoint()
        epoch_end = self.batch_in_epoch == len(self.batch_step)  # every curve reaches it
        if self.where.rank == 0 and (epoch_end or self.clock.due()):
            loss, accuracy = meter.means()
            check_finite(loss, "training loss", f"epoch {epoch + 1}, step {self.step}")
            self.hooks.progress(epoch=epoch + 1, loss=loss, accuracy=accuracy, **self._position())

    def _check_stop(self) -> None:
        """Stop here if asked; a preemption first checkpoints the last optimizer step.

        Checked before each micro-batch: the state saved is the one after the last optimizer
        step (``step``, ``batch_in_epoch``), so a half-accumulated group is redone, never lost
        or counted twice.
        """
        try:
            check_stop_together(self.hooks, self.where)
        except JobPreemptedError as e:
            self._checkpoint()
            raise JobPreemptedError(str(e), step=self.step) from None

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
        self._keep_if_best(val_loss if val_loss is not None else loss, epoch)
        self.epoch, self.batch_in_epoch = epoch + 1, 0
        if self.where.rank == 0:  # before the checkpoint, so the logs it carries hold this epoch
            self.hooks.progress(
                epoch=epoch + 1,
                loss=loss,
                accuracy=accuracy,
                val_loss=val_loss,
                val_accuracy=val_accuracy,
                phase="epoch",
                **position,
            )
        self._checkpoint()

    def _keep_if_best(self, score: float | None, epoch: int) -> None:
        if not self.batch_step.full_result or self.where.rank != 0 or score is None:
            return
        if self.best is None or score < self.best[0]:
            self.best = (score, epoch + 1, _cpu_copy(self.module.state_dict()))

    @torch.no_grad()
    def evaluate(self) -> tuple[float | None, float | None]:
        """Validation loss and accuracy over the whole validation split (all ranks together)."""
        meter = MetricSum(self.where.device)
        self.module.eval()
        for batch in self.batch_step.val_batches():
            self.hooks.beat(self.step)
            with self.precision.autocast():
                scored = self.batch_step.evaluate(self.module, batch)
            meter.add(scored.loss, scored.count, scored.correct)
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
            "gpu_memory_bytes": peak_memory_bytes(self.where.device),
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
            model=self.batch_step.weights(self.module),
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
        self.batch_step.load_weights(self.module, state.model)
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
        full = self.batch_step.full_result
        return TrainResult(
            # In-process, a recipe that saves the model it trained needs no copy of it.
            model_state=_cpu_copy(self.batch_step.weights(self.module))
            if full or self.where.world > 1
            else {},
            optimizer_state=self.optimizer.state_dict() if full else {},
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


def keep_frozen_norms_in_eval(model: nn.Module) -> None:
    """Put batch-norm layers with no trainable parameters in eval mode (call after .train()).

    A frozen layer should stay frozen: its running statistics must not drift either.
    """
    for module in model.modules():
        if isinstance(module, nn.modules.batchnorm._BatchNorm) and not any(
            p.requires_grad for p in module.parameters()
        ):
            module.eval()
