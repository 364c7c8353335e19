"""Stopping a job between two steps: the stop flag (a cancel, a timeout, a preemption) and the
time limit."""

from __future__ import annotations

import time
from dataclasses import dataclass, field

from sparktrainer.errors import JobCancelledError, JobPreemptedError, JobTimeout


@dataclass
class StopFlag:
    """Set from outside (a cancel request or a time limit); read by the recipe every step."""

    reason: str | None = None
    kind: str | None = None  # "cancel" | "timeout" | "preempt"

    def set(self, kind: str, reason: str) -> None:
        """Ask the running job to stop at its next step."""
        self.kind, self.reason = kind, reason


@dataclass
class StopCheck:
    """The stop flag and the job's time limit (0: none), counted from when the job began."""

    flag: StopFlag
    limit_s: float
    started_monotonic: float = field(default_factory=time.monotonic)

    def check(self) -> None:
        """Raise when the job was cancelled, preempted or ran past its time limit."""
        limit, flag = self.limit_s, self.flag
        if flag.kind is None and limit and time.monotonic() - self.started_monotonic > limit:
            flag.set("timeout", f"job exceeded its time limit of {limit:g} s")
        if flag.kind == "cancel":
            raise JobCancelledError(flag.reason or "cancel requested")
        if flag.kind == "timeout":
            raise JobTimeout(flag.reason or "time limit exceeded")
        if flag.kind == "preempt":
            raise JobPreemptedError(flag.reason or "the trainer is stopping")
