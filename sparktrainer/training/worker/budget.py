"""What one job may take of the machine, enforced where it runs.

The worker memory budget (``SPARKTRAINER_WORKER_MEMORY_BUDGET_BYTES``, default 80% of the
machine's memory) is enforced twice: the parent watches the RSS of the worker and its DDP ranks
together and kills them past the budget (:class:`MemoryWatch`), and on a machine without CUDA
the worker's data segment is capped (``RLIMIT_DATA``), so one huge allocation fails at once
instead of swapping the machine to death. On CUDA each GPU is capped at
``SPARKTRAINER_WORKER_CUDA_MEMORY_FRACTION`` of its memory. The child reports its devices
(:func:`capacity`), and the trainer refuses a job its estimate says cannot fit them.
"""

from __future__ import annotations

import contextlib
import resource
from dataclasses import asdict
from typing import Any

import psutil

from sparktrainer.contracts.caps import Capacity, show_bytes
from sparktrainer.settings import Settings

BUDGET_SETTING = "SPARKTRAINER_WORKER_MEMORY_BUDGET_BYTES"
DEFAULT_BUDGET_FRACTION = 0.8
# Address space the worker maps but never touches (thread stacks, arenas, libraries): the
# data-segment cap sits this far above the RSS budget, a backstop for one huge allocation.
DATA_LIMIT_SLACK_BYTES = 768 * 2**20


def memory_budget_bytes(settings: Settings) -> int:
    """The RSS budget of the worker and its ranks together."""
    if settings.worker_memory_budget_bytes:
        return settings.worker_memory_budget_bytes
    return int(psutil.virtual_memory().total * DEFAULT_BUDGET_FRACTION)


def budget_note(settings: Settings) -> str:
    """How a failure names the budget it hit."""
    budget = show_bytes(memory_budget_bytes(settings))
    return f"the worker memory budget of {budget} ({BUDGET_SETTING})"


def apply_limits(settings: Settings) -> None:
    """In the worker, before any job: cap the data segment (no CUDA) or each GPU's share."""
    import torch

    if torch.cuda.is_available():
        for device in range(torch.cuda.device_count()):
            torch.cuda.set_per_process_memory_fraction(settings.worker_cuda_memory_fraction, device)
        return
    limit = memory_budget_bytes(settings) + DATA_LIMIT_SLACK_BYTES
    with contextlib.suppress(ValueError, OSError):  # a lower hard limit was set by the host
        resource.setrlimit(
            resource.RLIMIT_DATA, (limit, resource.getrlimit(resource.RLIMIT_DATA)[1])
        )


def capacity(settings: Settings) -> dict[str, Any]:
    """This worker's devices and budget, as the ready message carries them."""
    return asdict(device_capacity(settings))


def device_capacity(settings: Settings) -> Capacity:
    """This process's devices (GPU memory times the allowed fraction) and the memory budget."""
    import torch

    gpus: tuple[int, ...] = ()
    if torch.cuda.is_available():
        gpus = tuple(
            int(
                torch.cuda.get_device_properties(d).total_memory
                * settings.worker_cuda_memory_fraction
            )
            for d in range(torch.cuda.device_count())
        )
    return Capacity(
        memory_budget_bytes=memory_budget_bytes(settings),
        gpu_memory_bytes=gpus,
        cpu_max_world_size=settings.cpu_max_world_size,
    )


def is_out_of_memory(error: BaseException) -> bool:
    """A failed allocation: Python's MemoryError, or torch's on the CPU or a GPU."""
    if isinstance(error, MemoryError) or type(error).__name__ == "OutOfMemoryError":
        return True
    text = str(error)
    return isinstance(error, RuntimeError) and (
        "can't allocate memory" in text or "not enough memory" in text
    )


class MemoryWatch:
    """The RSS of a process and all its descendants, against a budget (in the parent)."""

    def __init__(self, budget_bytes: int) -> None:
        self.budget_bytes = budget_bytes

    @staticmethod
    def tree(pid: int) -> list[psutil.Process]:
        """The process and its descendants (those that still exist)."""
        try:
            root = psutil.Process(pid)
            return [root, *root.children(recursive=True)]
        except psutil.Error:
            return []

    def rss(self, pid: int) -> int:
        """Resident bytes of the whole tree now."""
        total = 0
        for process in self.tree(pid):
            with contextlib.suppress(psutil.Error):
                total += process.memory_info().rss
        return total

    def over(self, pid: int) -> int | None:
        """The tree's RSS when it is above the budget, else None."""
        used = self.rss(pid)
        return used if used > self.budget_bytes else None

    def kill(self, pid: int) -> None:
        """SIGKILL the whole tree (children first, so none is left orphaned)."""
        for process in reversed(self.tree(pid)):
            with contextlib.suppress(psutil.Error):
                process.kill()
