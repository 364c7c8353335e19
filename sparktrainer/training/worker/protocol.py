"""What travels between ``WarmWorker`` and its child process, over two one-way pipes.

Parent to child: ``("run", seq, job_json, attempt, log_path)`` (the file the job's stdout and
stderr go to), ``("cancel", seq, reason, kind)`` (kind ``cancel``, ``timeout`` or ``preempt``),
``("stop",)``. Child to parent: ``("ready", info)`` (info: pid, import time, ``capacity``: the
fields of ``contracts.caps.Capacity``), ``("accepted", seq)``, ``("event", seq, ce_type, json)``,
``("beat", seq, step)`` (the loop's heartbeat for the hang watchdog; step None: the loop ended),
``("outcome", seq, fields)``; the parent's reader (``pump_events``) adds ``("eof",)`` when the
child is gone.
``seq`` numbers the runs, so a message left over from a run the parent gave up on is ignored.
An outcome's ``fields`` come from ``outcome_fields`` / ``failure_fields`` and are read back by
``Outcome.from_child``.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable
from dataclasses import dataclass
from multiprocessing.connection import Connection
from typing import Any, Literal

from sparktrainer.contracts.events import ModelRegistered
from sparktrainer.contracts.failures import FailureReason
from sparktrainer.errors import JobCancelledError, JobPreemptedError, SparkTrainerError
from sparktrainer.training.worker.budget import is_out_of_memory
from sparktrainer.training.worker.causes import cause_of_error

REASON_MAX_CHARS = 2000


@dataclass
class Outcome:
    """How a job ended in the worker."""

    status: Literal["completed", "failed", "cancelled", "preempted"]
    registered: ModelRegistered | None = None
    reason: str | None = None
    error_type: str | None = None
    retriable: bool = False
    resumed_from_epoch: int | None = None
    duration_s: float = 0.0
    checkpoint_step: int | None = None  # preempted: the step of the checkpoint taken at the stop
    cause: FailureReason | None = None
    signal: int | None = None  # the signal that ended the worker (cause crashed / oom_killed)

    @classmethod
    def from_child(cls, fields: dict[str, Any]) -> Outcome:
        """Rebuild the outcome the child sent."""
        registered = fields.get("registered")
        return cls(
            status=fields["status"],
            registered=ModelRegistered.model_validate_json(registered) if registered else None,
            reason=fields.get("reason"),
            error_type=fields.get("error_type"),
            retriable=bool(fields.get("retriable", False)),
            resumed_from_epoch=fields.get("resumed_from_epoch"),
            duration_s=float(fields.get("duration_s", 0.0)),
            checkpoint_step=fields.get("checkpoint_step"),
            cause=FailureReason(fields["cause"]) if fields.get("cause") else None,
        )


def outcome_fields(registered: ModelRegistered) -> dict[str, Any]:
    """Outcome fields of a job that registered its model."""
    return {"status": "completed", "registered": registered.model_dump_json()}


def preempted_fields(error: JobPreemptedError, uploaded: bool) -> dict[str, Any]:
    """Outcome fields of a job stopped for its trainer's stop; the step it resumes from."""
    step = error.step if uploaded else None
    where = f"at step {step}" if step is not None else "without a checkpoint of its own"
    reason = f"{error} (stopped {where})"[:REASON_MAX_CHARS]
    return {"status": "preempted", "reason": reason, "error_type": "JobPreempted",
            "retriable": True, "checkpoint_step": step,
            "cause": FailureReason.PREEMPTED.value}  # fmt: skip


def failure_fields(error: BaseException, memory_budget: str = "") -> dict[str, Any]:
    """Outcome fields for an exception: cancelled, or failed with type + message.

    A failed allocation names ``memory_budget`` (how the worker's budget reads) and is not
    retried: the same job would need the same memory again.
    """
    message = str(error).strip() or "no message"
    cause = cause_of_error(error).value
    if isinstance(error, JobCancelledError):
        return {"status": "cancelled", "reason": message, "error_type": type(error).__name__,
                "cause": cause}  # fmt: skip
    retriable = isinstance(error, SparkTrainerError) and error.retriable
    error_type = type(error).__name__
    if is_out_of_memory(error):
        within = "GPU memory" if error_type == "OutOfMemoryError" else memory_budget or "memory"
        message = (
            f"the job ran out of memory within {within}: {message.splitlines()[0][:300]} "
            "(lower batch_size or use a smaller model)"
        )
        error_type, retriable = "MemoryBudgetExceeded", False
    reason = f"{type(error).__name__}: {message}"[:REASON_MAX_CHARS]
    return {"status": "failed", "reason": reason, "error_type": error_type, "retriable": retriable,
            "cause": cause}  # fmt: skip


def pump_events(
    conn: Connection,
    loop: asyncio.AbstractEventLoop,
    inbox: asyncio.Queue[tuple[Any, ...]],
    on_beat: Callable[[tuple[Any, ...], float], None],
) -> None:
    """Reader thread: child messages into the asyncio inbox, then ("eof",) when it dies.

    Beats bypass the inbox, timed as they arrive: a slow event delivery (a broker that lags)
    must not look like a hung job.
    """
    message: tuple[Any, ...]
    while True:
        try:
            message = conn.recv()
        except (EOFError, OSError):
            message = ("eof",)
        try:
            if message[0] == "beat":
                loop.call_soon_threadsafe(on_beat, message, time.monotonic())
                continue
            loop.call_soon_threadsafe(inbox.put_nowait, message)
        except RuntimeError:  # the loop is closed: nobody is listening any more
            return
        if message[0] == "eof":
            conn.close()
            return
