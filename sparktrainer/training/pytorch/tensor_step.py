"""The PyTorch recipe's side of the loop: a plan of in-memory tensors and its batch step.

The model maps a batch of features to class logits; the loss is cross-entropy, accuracy is
the argmax's. The one ``TrainingLoop`` (``training/loop/``) does everything else.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import torch
import torch.nn.functional as F
from torch import nn

from sparktrainer.contracts.jobspec import TrainingOptions
from sparktrainer.training.checkpoint import ResumeState
from sparktrainer.training.loop.device import seed_everything
from sparktrainer.training.loop.plan import Rank, Scored
from sparktrainer.training.pytorch.data import Batches, SplitData

Pair = tuple[torch.Tensor, torch.Tensor]


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

    def prepare(self, where: Rank, batch_size: int) -> tuple[nn.Module, TensorStep]:
        """The model on this rank's device, only ``trainable`` trainable; and its batches."""
        seed_everything(self.options.seed)
        module = self.model.to(where.device)
        trainable = set(self.trainable)
        for name, p in module.named_parameters():
            p.requires_grad_(name in trainable)
        return module, TensorStep(self.data, batch_size, self.options, where)


class TensorStep:
    """Classification batches of in-memory tensors, already on the rank's device."""

    full_result = True  # the recipe writes model.pth (with optimizer state) and best_model.pth

    def __init__(self, data: SplitData, batch_size: int, opts: TrainingOptions, where: Rank):
        self.train = Batches(
            data.x_train,
            data.y_train,
            batch_size,
            seed=opts.seed,
            rank=where.rank,
            world=where.world,
            device=where.device,
        )
        self.x_val = data.x_val[where.rank :: where.world]
        self.y_val = data.y_val[where.rank :: where.world]
        self.val_size, self.device = max(1, opts.batch_size), where.device

    def __len__(self) -> int:
        return len(self.train)

    def batches(self, epoch: int, start: int) -> Iterator[Pair]:
        """This rank's batches of ``epoch`` from number ``start`` on."""
        return self.train.epoch(epoch, start)

    def forward(self, model: nn.Module, batch: Pair) -> Scored:
        """Cross-entropy of the logits, and how many the argmax got right."""
        x, y = batch
        logits = model(x)
        loss = F.cross_entropy(logits, y)
        return Scored(loss, y.shape[0], (logits.argmax(1) == y).sum(), y.shape[0])

    def val_batches(self) -> Iterator[Pair]:
        """This rank's share of the validation split, on its device."""
        for start in range(0, len(self.x_val), self.val_size):
            x = self.x_val[start : start + self.val_size].to(self.device, non_blocking=True)
            y = self.y_val[start : start + self.val_size].to(self.device, non_blocking=True)
            yield x, y

    def evaluate(self, module: nn.Module, batch: Pair) -> Scored:
        """As ``forward``, with the loss taken in float32."""
        x, y = batch
        logits = module(x)
        loss = F.cross_entropy(logits.float(), y)
        return Scored(loss, y.shape[0], (logits.argmax(1) == y).sum(), y.shape[0])

    def weights(self, module: nn.Module) -> dict[str, torch.Tensor]:
        """The whole state dict."""
        return module.state_dict()

    def load_weights(self, module: nn.Module, state: dict[str, torch.Tensor]) -> None:
        """Load a whole state dict (strict)."""
        module.load_state_dict(state)
