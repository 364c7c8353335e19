"""How a job ends when its worker did not end it: the guard killed it, or it died on its own."""

from __future__ import annotations

from sparktrainer.contracts.caps import show_bytes
from sparktrainer.contracts.failures import FailureReason, retry_helps
from sparktrainer.settings import Settings
from sparktrainer.training.worker.budget import budget_note
from sparktrainer.training.worker.causes import cause_of_exit, signal_name
from sparktrainer.training.worker.hang import Hang
from sparktrainer.training.worker.protocol import Outcome


def over_budget(used: int, settings: Settings) -> Outcome:
    """Killed past the memory budget: not retried, the same job needs the same memory."""
    return Outcome(
        status="failed",
        reason=f"the job used {show_bytes(used)} of memory, above "
        f"{budget_note(settings)}: lower batch_size, the data or the model",
        error_type="MemoryBudgetExceeded",
        cause=FailureReason.MEMORY_BUDGET,
    )


def hung(hang: Hang) -> Outcome:
    """Killed by the hang watchdog; retried from the last checkpoint within the attempt limit."""
    return Outcome(
        status="failed",
        reason=f"{hang.describe()}: killed, its Python stacks are in the attempt's log",
        error_type="JobHung",
        retriable=retry_helps(FailureReason.HUNG),
        cause=FailureReason.HUNG,
    )


def died(code: int | None, oom_killed: bool, detail: str = "") -> Outcome:
    """A worker that died on its own: OOM-killed by the kernel, or crashed (by a signal)."""
    cause, signum = cause_of_exit(code, oom_killed)
    how = (
        "was killed by the kernel's OOM killer (its memory cgroup counted an OOM kill): "
        "lower batch_size or give the trainer more memory"
        if cause is FailureReason.OOM_KILLED
        else f"died ({signal_name(signum) if signum else f'exit code {code}'})"
    )
    return Outcome(
        status="failed",
        reason=f"training worker {how}{' ' + detail if detail else ''}",
        error_type="WorkerDied",
        retriable=retry_helps(cause),
        cause=cause,
        signal=signum,
    )


def stopped_by_force(kind: str, reason: str, grace_s: float) -> Outcome:
    """A job asked to stop (``kind``: preempt, cancel, timeout) that was killed past its grace."""
    reason = f"{reason} (it did not stop within {grace_s:g} s and was killed)"
    if kind == "preempt":
        return Outcome(
            status="preempted",
            reason=f"{reason}; it resumes from its last periodic checkpoint",
            error_type="JobPreempted",
            retriable=True,
            cause=FailureReason.PREEMPTED,
        )
    if kind == "cancel":
        return Outcome(
            status="cancelled",
            reason=reason,
            error_type="JobCancelledError",
            cause=FailureReason.CANCELLED,
        )
    return Outcome(
        status="failed", reason=reason, error_type="JobTimeout", cause=FailureReason.TIMEOUT
    )
