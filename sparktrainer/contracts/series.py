"""The metric series of a job: their names, and which scalars each event contributes.

One table for everyone who draws a job's training: the registry's metric history
(``registry/series.py``), the TensorBoard event files the training worker writes
(``training/job/tensorboard.py``), the API, the CLI plot and the dashboard. A series is
keyed by the job's global optimizer step; epoch-level series take the step at the epoch's
end, so every curve of a job shares one x axis.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Literal

from sparktrainer.contracts.events import CheckpointSaved, JobProgress

Level = Literal["step", "epoch", "checkpoint"]


@dataclass(frozen=True)
class SeriesSpec:
    """One series: its name (TensorBoard tag), the field it reads, and its level."""

    name: str
    field: str
    level: Level
    title: str


SERIES: tuple[SeriesSpec, ...] = (
    # Every rate-limited report during an epoch (training numbers since the last report).
    SeriesSpec("train/loss", "loss", "step", "training loss"),
    SeriesSpec("train/accuracy", "accuracy", "step", "training accuracy"),
    SeriesSpec("train/perplexity", "perplexity", "step", "training perplexity"),
    SeriesSpec("train/learning_rate", "learning_rate", "step", "learning rate"),
    SeriesSpec("train/samples_per_s", "samples_per_s", "step", "samples per second"),
    SeriesSpec("train/step_s", "step_s", "step", "seconds per optimizer step"),
    SeriesSpec("train/gpu_memory_bytes", "gpu_memory_bytes", "step", "peak GPU memory"),
    # The report at each epoch's end (means over the whole epoch, and validation).
    SeriesSpec("epoch/loss", "loss", "epoch", "epoch training loss"),
    SeriesSpec("epoch/accuracy", "accuracy", "epoch", "epoch training accuracy"),
    SeriesSpec("val/loss", "val_loss", "epoch", "validation loss"),
    SeriesSpec("val/accuracy", "val_accuracy", "epoch", "validation accuracy"),
    SeriesSpec("val/perplexity", "val_perplexity", "epoch", "validation perplexity"),
    # Each checkpoint upload.
    SeriesSpec("checkpoint/size_bytes", "size_bytes", "checkpoint", "checkpoint size"),
    SeriesSpec("checkpoint/upload_s", "upload_s", "checkpoint", "checkpoint upload seconds"),
)
SERIES_BY_NAME: dict[str, SeriesSpec] = {s.name: s for s in SERIES}
TRAINING_LEVELS: tuple[Level, ...] = ("step", "epoch")  # what TensorBoard files hold


@dataclass(frozen=True)
class Point:
    """One value of one series at one step."""

    series: str
    step: int
    epoch: int
    value: float


def points_of(event: JobProgress | CheckpointSaved) -> list[Point]:
    """The points an event adds: a step report, an epoch's end, or a checkpoint upload."""
    if isinstance(event, CheckpointSaved):
        level: Level = "checkpoint"
    else:
        level = "epoch" if event.epoch_end else "step"
    out = []
    for spec in SERIES:
        if spec.level != level:
            continue
        value = getattr(event, spec.field, None)
        if isinstance(value, int | float) and math.isfinite(value):
            out.append(Point(spec.name, event.step, event.epoch, float(value)))
    return out


def perplexity(loss: float | None) -> float | None:
    """exp(mean token loss), the language-model reading of a loss; None past float range."""
    if loss is None or not math.isfinite(loss) or loss > 700.0:
        return None
    return math.exp(loss)
