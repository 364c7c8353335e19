"""Why a job failed, as one ``FailureReason``: from the exception it raised, or how its worker died.

A worker killed by SIGKILL that the parent did not kill is ``oom_killed`` when its memory
cgroup counted an OOM kill during the attempt (the kernel's OOM killer, or the container's
limit), else ``crashed`` with the signal. The cgroup is read while the worker lives (its
``/proc`` entry is gone once it died); cgroup v2 (``memory.events``) and v1
(``memory.oom_control``) both count kills.
"""

from __future__ import annotations

import contextlib
import signal
from pathlib import Path

from sparktrainer.contracts.failures import FailureReason
from sparktrainer.errors import (
    ConfigurationError,
    DataError,
    InvalidJobError,
    JobCancelledError,
    JobPreemptedError,
    JobTimeout,
    ModelUnavailableError,
    ObjectNotFound,
    StorageError,
    UnsafeArtifactError,
)
from sparktrainer.training.worker.budget import is_out_of_memory

CGROUP_ROOT = Path("/sys/fs/cgroup")


def cause_of_error(error: BaseException) -> FailureReason:
    """The reason an exception raised in the worker stands for."""
    if is_out_of_memory(error):
        on_gpu = type(error).__name__ == "OutOfMemoryError" and "CUDA" in str(error)
        return FailureReason.CUDA_OOM if on_gpu else FailureReason.MEMORY_BUDGET
    table: list[tuple[type[BaseException], FailureReason]] = [
        (JobCancelledError, FailureReason.CANCELLED),
        (JobPreemptedError, FailureReason.PREEMPTED),
        (JobTimeout, FailureReason.TIMEOUT),
        (DataError, FailureReason.DATA),
        (ModelUnavailableError, FailureReason.MODEL_UNAVAILABLE),
        (InvalidJobError, FailureReason.CONFIG),
        (ConfigurationError, FailureReason.CONFIG),
        # a parent model or checkpoint whose bytes are not the recorded ones
        (UnsafeArtifactError, FailureReason.MODEL_UNAVAILABLE),
        (ObjectNotFound, FailureReason.DATA),
        (StorageError, FailureReason.STORAGE),
    ]
    for kind, reason in table:
        if isinstance(error, kind):
            return reason
    if "training diverged" in str(error):  # loop/metrics.check_finite
        return FailureReason.DIVERGED
    return FailureReason.INTERNAL


def cause_of_exit(exit_code: int | None, oom_killed: bool) -> tuple[FailureReason, int | None]:
    """The reason and signal of a worker that died on its own (``exit_code`` < 0: a signal)."""
    signum = -exit_code if exit_code is not None and exit_code < 0 else None
    if signum == signal.SIGKILL and oom_killed:
        return FailureReason.OOM_KILLED, signum
    return FailureReason.CRASHED, signum


def signal_name(signum: int | None) -> str:
    """``SIGKILL`` for 9; the number when the platform has no name for it."""
    if signum is None:
        return "no signal"
    with contextlib.suppress(ValueError):
        return signal.Signals(signum).name
    return f"signal {signum}"


class OomKills:
    """The OOM-kill count of a process's memory cgroup, read while the process lives."""

    def __init__(self, pid: int, root: Path = CGROUP_ROOT) -> None:
        self.files = _counter_files(pid, root)
        self.before = self.count()

    def count(self) -> int:
        """OOM kills counted so far in the process's cgroup (0 when none can be read)."""
        total = 0
        for path in self.files:
            with contextlib.suppress(OSError, ValueError):
                for line in path.read_text().splitlines():
                    key, _, value = line.partition(" ")
                    if key == "oom_kill":
                        total += int(value)
        return total

    def happened(self) -> bool:
        """Whether the cgroup counted an OOM kill since this watch began."""
        return self.count() > self.before


def _counter_files(pid: int, root: Path) -> list[Path]:
    """memory.events (v2) or memory.oom_control (v1) of ``pid``'s memory cgroup."""
    try:
        lines = Path(f"/proc/{pid}/cgroup").read_text().splitlines()
    except OSError:
        return []
    files = []
    for line in lines:
        _, controllers, path = line.split(":", 2)
        if controllers == "":
            files.append(root / path.lstrip("/") / "memory.events")
            files.append(root / "unified" / path.lstrip("/") / "memory.events")
        elif "memory" in controllers.split(","):
            files.append(root / "memory" / path.lstrip("/") / "memory.oom_control")
    return [f for f in files if f.is_file()]
