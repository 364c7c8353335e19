"""Why a job ended without a model: one machine-readable cause, and whether a retry can help.

``JobFailed`` and ``JobCancelled`` carry a ``cause`` from :class:`FailureReason` beside their
human ``reason`` text (older events have none and still decode). ``RETRY_HELPS`` is the one
table that says whether another attempt can cure a cause: the trainer ends a job on its first
attempt when it cannot, and a client may resubmit only when it can.
"""

from __future__ import annotations

from enum import StrEnum


class FailureReason(StrEnum):
    """The cause of a failed, cancelled or preempted end (also a metric label: keep it small)."""

    OOM_KILLED = "oom_killed"  # the kernel's OOM killer (or a memory cgroup) killed the worker
    CUDA_OOM = "cuda_oom"  # torch.cuda.OutOfMemoryError: the batch does not fit the GPU
    MEMORY_BUDGET = "memory_budget"  # the worker passed its RSS budget and was stopped
    CRASHED = "crashed"  # the worker died by a signal (``signal`` says which) or exited
    HUNG = "hung"  # no step finished within the hang watchdog's limit
    TIMEOUT = "timeout"  # the job ran past its max_runtime_s
    CANCELLED = "cancelled"  # a cancel was requested
    PREEMPTED = "preempted"  # the trainer was stopped or the job gave way to a higher priority
    CONFIG = "config"  # the job's config cannot run (refused by the trainer, wrong values)
    DATA = "data"  # the data set is missing, unreadable or malformed
    MODEL_UNAVAILABLE = "model_unavailable"  # a hub or registered model could not be loaded
    ATTEMPTS_EXHAUSTED = "attempts_exhausted"  # started max_attempts times, never ended
    STORAGE = "storage"  # the object store failed (reading data, writing checkpoints)
    DIVERGED = "diverged"  # the loss went NaN or infinite
    INTERNAL = "internal"  # a bug in SparkTrainer or the recipe: anything not classified above


# Whether another attempt (resuming from the last checkpoint) can cure the cause.
RETRY_HELPS: dict[FailureReason, bool] = {
    FailureReason.OOM_KILLED: True,  # often a neighbour's memory; the next host may have room
    FailureReason.CUDA_OOM: False,  # the same batch on the same card runs out again
    FailureReason.MEMORY_BUDGET: False,  # the same job grows past the same budget again
    FailureReason.CRASHED: True,  # a segfault or a stray kill is often transient
    FailureReason.HUNG: True,  # a dead loader or a stuck collective may not recur
    FailureReason.TIMEOUT: False,  # the time limit is spent
    FailureReason.CANCELLED: False,
    FailureReason.PREEMPTED: True,  # it resumes on the next trainer
    FailureReason.CONFIG: False,
    FailureReason.DATA: False,
    FailureReason.MODEL_UNAVAILABLE: False,  # offline, or the name is wrong
    FailureReason.ATTEMPTS_EXHAUSTED: False,
    FailureReason.STORAGE: True,  # an outage passes
    FailureReason.DIVERGED: False,
    FailureReason.INTERNAL: False,
}


def retry_helps(reason: FailureReason) -> bool:
    """Whether another attempt can cure ``reason`` (the one table, ``RETRY_HELPS``)."""
    return RETRY_HELPS[reason]
