"""A job's metric series: their names, and which numbers of a progress report feed which one.

The registry's metric history (``registry/metric_series.py``), the API, the CLI, the dashboard
and the TensorBoard files the trainer writes (``training/job/scalars.py``) all use these
names, so a curve is called the same everywhere. Names group as TensorBoard groups them:
``loss/train`` (the running mean within an epoch, at each report), ``loss/train_epoch`` and
``loss/val`` (at each epoch's end) share the ``loss`` chart. Every series is keyed by the
job's optimizer step, so all curves of a job share one x axis.

A report repeated (a redelivery, a replay) lands on the same point, and an attempt that
resumed from step S rewrites what came after S.
"""

from __future__ import annotations

import math

from sparktrainer.contracts.events import JobProgress

# Report field -> series, for the two phases of a report.
STEP_SERIES: dict[str, str] = {
    "loss": "loss/train",
    "accuracy": "accuracy/train",
    "learning_rate": "learning_rate",
    "samples_per_s": "samples_per_s",
    "gpu_memory_bytes": "gpu_memory_bytes",
}
EPOCH_SERIES: dict[str, str] = {
    "loss": "loss/train_epoch",
    "accuracy": "accuracy/train_epoch",
    "val_loss": "loss/val",
    "val_accuracy": "accuracy/val",
}
RECORDED_SERIES: tuple[str, ...] = (*STEP_SERIES.values(), *EPOCH_SERIES.values())

# Generation (language-model) jobs: accuracy is per predicted token, and perplexity is the
# number people read; both are derived from what the loop reports.
GENERATION = "generation"
_RENAMED = {"accuracy/val": "token_accuracy/val", "accuracy/train_epoch": "token_accuracy/train"}
_PERPLEXITY = {"loss/train": "perplexity/train", "loss/val": "perplexity/val"}
_MAX_LOG_PERPLEXITY = 50.0  # exp(50) ~ 5e21: finite in JSON and in float32 event files


def points_of(report: JobProgress) -> dict[str, float]:
    """The recorded series points one progress report adds, at ``report.step``."""
    fields = EPOCH_SERIES if report.phase == "epoch" else STEP_SERIES
    out: dict[str, float] = {}
    for name, series in fields.items():
        value = getattr(report, name)
        if value is not None and math.isfinite(value):
            out[series] = float(value)
    return out


def shown(series: str, value: float, task: str | None) -> list[tuple[str, float]]:
    """How a recorded point is shown for a job of ``task``: renamed, plus what derives from it."""
    if task != GENERATION:
        return [(series, value)]
    out = [(_RENAMED.get(series, series), value)]
    if series in _PERPLEXITY:
        out.append((_PERPLEXITY[series], math.exp(min(value, _MAX_LOG_PERPLEXITY))))
    return out


def task_of(config: object) -> str | None:
    """The task a job's config names (``classification`` or ``generation``; None for PyTorch)."""
    task = getattr(config, "task_type", None)
    return task if isinstance(task, str) else None


def lower_is_better(series: str) -> bool:
    """Whether a smaller value of a series is better (losses, perplexity); else larger is."""
    return any(word in series for word in ("loss", "perplexity"))
