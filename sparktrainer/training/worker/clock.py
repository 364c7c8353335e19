"""The trainer's own clock for one attempt: wall seconds, and the worker's CPU seconds.

Measured on the parent side, so a worker killed mid-job (its budget, a stop that does not stop,
a segfault) is still accounted: the CPU time of the worker and its DDP ranks is sampled every
``SAMPLE_EVERY_S`` and at each event, and the last sample stands for a process that is gone.
Each process counts from its first sample on (a warm worker's earlier jobs and imports are not
this attempt's); a worker replaced during the attempt counts from its own first sample.
"""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections.abc import Callable, Iterator

import psutil

from sparktrainer.contracts.usage import MAX_SECONDS, AttemptUsage

SAMPLE_EVERY_S = 1.0
CpuOf = Callable[[int], float | None]


def process_cpu_s(pid: int) -> float | None:
    """User + system seconds of ``pid``, its reaped children and its live descendants (DDP
    ranks); None when the process is gone."""
    try:
        process = psutil.Process(pid)
        with process.oneshot():
            own = process.cpu_times()
            total = own.user + own.system + own.children_user + own.children_system
            kids = process.children(recursive=True)
    except (psutil.NoSuchProcess, psutil.AccessDenied, psutil.ZombieProcess):
        return None
    for kid in kids:
        with contextlib.suppress(psutil.NoSuchProcess, psutil.AccessDenied, psutil.ZombieProcess):
            times = kid.cpu_times()
            total += times.user + times.system
    return total


class AttemptClock:
    """Wall time from :meth:`start` to :meth:`usage`, and CPU time of whichever worker ran it.

    :param pid_of: the worker's process id now (None while it has none).
    :param gpus: the GPUs the attempt holds (``Capacity.gpus_held``).
    :param cpu_of: reads a process's CPU seconds (``process_cpu_s``; tests pass their own).
    :param monotonic: the wall clock (``time.monotonic``).
    """

    def __init__(
        self,
        pid_of: Callable[[], int | None],
        gpus: int,
        cpu_of: CpuOf = process_cpu_s,
        monotonic: Callable[[], float] = time.monotonic,
    ) -> None:
        self.pid_of, self.gpus, self.cpu_of, self.monotonic = pid_of, gpus, cpu_of, monotonic
        self.started = monotonic()
        self.first: dict[int, float] = {}  # each worker's CPU seconds when first sampled
        self.last: dict[int, float] = {}  # and at its latest sample
        self.sample()

    def sample(self) -> None:
        """Read the current worker's CPU time (a gone process keeps its last sample)."""
        pid = self.pid_of()
        if pid is None:
            return
        cpu = self.cpu_of(pid)
        if cpu is None:
            return
        self.first.setdefault(pid, cpu)
        self.last[pid] = max(cpu, self.last.get(pid, cpu))

    def cpu_s(self) -> float:
        """CPU seconds of every worker of the attempt since its first sample."""
        return sum(self.last[pid] - first for pid, first in self.first.items())

    def usage(self, attempt: int) -> AttemptUsage:
        """What the attempt used up to now (a last sample taken first)."""
        self.sample()
        wall_s = min(MAX_SECONDS, max(0.0, self.monotonic() - self.started))
        return AttemptUsage(
            attempt=attempt, wall_s=wall_s, gpus=self.gpus, cpu_s=min(MAX_SECONDS, self.cpu_s())
        )

    @contextlib.contextmanager
    def sampling(self, every_s: float = SAMPLE_EVERY_S) -> Iterator[None]:
        """Sample every ``every_s`` in the running loop while the block runs."""
        task = asyncio.get_running_loop().create_task(self._sample_every(every_s))
        try:
            yield
        finally:
            task.cancel()

    async def _sample_every(self, every_s: float) -> None:
        while True:
            await asyncio.sleep(every_s)
            with contextlib.suppress(Exception):  # a failed read loses one sample, not the rest
                self.sample()
