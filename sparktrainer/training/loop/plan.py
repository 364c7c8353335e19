"""What a recipe hands the loop and gets back: its plan, batch step, hooks and the result.

A ``Plan`` (picklable, so DDP ranks can receive it) brings options, resume state and where
to write checkpoints, and builds the model and its ``BatchStep`` (how batches are made, run
and scored) for a ``Rank``; the loop talks back through ``Hooks`` and ends in a
``TrainResult``.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Protocol

import torch
from torch import nn

from sparktrainer.contracts.jobspec import TrainingOptions
from sparktrainer.training.checkpoint import ResumeState


class Hooks(Protocol):
    """How the loop talks to the job: rank 0 gets the real ones, other ranks ``NoHooks``."""

    def check_stop(self) -> None: ...
    def beat(self, step: int) -> None: ...  # a batch came (for the hang watchdog)
    def progress(self, **fields: Any) -> None: ...
    def checkpoint(self, path: Path, epoch: int, step: int) -> None: ...


class NoHooks:
    """Hooks of a non-reporting rank."""

    def check_stop(self) -> None:
        return None

    def beat(self, step: int) -> None:
        return None

    def progress(self, **fields: Any) -> None:
        return None

    def checkpoint(self, path: Path, epoch: int, step: int) -> None:
        path.unlink(missing_ok=True)


@dataclass
class Rank:
    """Where this process sits: its rank, the world size, its device, the stop-vote group."""

    rank: int = 0
    world: int = 1
    device: torch.device = field(default_factory=lambda: torch.device("cpu"))
    control: Any = None  # a gloo process group for stop votes (None: single process)


@dataclass
class Scored:
    """One forward pass: mean loss, what it averages over, right answers (if any), rows."""

    loss: torch.Tensor
    count: int
    correct: torch.Tensor | None
    rows: int


class BatchStep(Protocol):
    """What a kind of model brings to the loop: its batches, its forward pass, its weights.

    ``full_result``: keep the best epoch's weights and hand back weights and optimizer state
    (the recipe writes its files from them); else weights only from DDP ranks (the recipe
    saves the model it trained).
    """

    full_result: bool

    def __len__(self) -> int: ...  # this rank's micro-batches per epoch
    def batches(self, epoch: int, start: int) -> Iterator[Any]: ...
    def forward(self, model: nn.Module, batch: Any) -> Scored: ...  # runs under autocast
    def val_batches(self) -> Iterator[Any]: ...
    def evaluate(self, module: nn.Module, batch: Any) -> Scored: ...
    def weights(self, module: nn.Module) -> dict[str, torch.Tensor]: ...
    def load_weights(self, module: nn.Module, state: dict[str, torch.Tensor]) -> None: ...


class Plan(Protocol):
    """What the loop needs of a recipe's plan; picklable, so DDP ranks can receive it."""

    @property
    def options(self) -> TrainingOptions: ...
    @property
    def workdir(self) -> Path: ...
    @property
    def resume(self) -> ResumeState | None: ...
    @property
    def checkpoint_every_steps(self) -> int: ...
    @property
    def progress_every_s(self) -> float: ...

    def prepare(self, where: Rank, batch_size: int) -> tuple[nn.Module, BatchStep]:
        """The model on ``where.device`` and its batch step (``batch_size`` rows a rank)."""
        ...


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
