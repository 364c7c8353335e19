"""Scheduling knowledge: priorities, resource classes, how a job is routed and how it is ranked.

Plain pydantic, no Kafka: the validator routes with it, the trainer's picker ranks with it, the
registry's queue view orders with it. A resource class is one entry of :data:`CLASSES` (each has
one validated topic per priority, see ``topics.py``); the rules are written down in
docs/ARCHITECTURE.md ("Scheduling").
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Annotated, Literal, get_args

from pydantic import BaseModel, ConfigDict, Field, StrictBool, StrictFloat, StrictInt

Priority = Literal["low", "normal", "high"]
PRIORITIES: tuple[str, ...] = get_args(Priority)  # lowest first
LEVEL: dict[str, int] = {name: level for level, name in enumerate(PRIORITIES)}
TOP_LEVEL = len(PRIORITIES) - 1
DEFAULT_PRIORITY: Priority = "normal"
GIB = 2**30


class Resources(BaseModel):
    """What a job needs of the trainer that runs it."""

    model_config = ConfigDict(extra="forbid", frozen=True, allow_inf_nan=False)

    gpus: Annotated[StrictInt, Field(ge=0)] = 0
    min_gpu_memory_gib: Annotated[StrictFloat | StrictInt, Field(ge=0)] = 0
    allow_cpu: StrictBool | None = Field(
        default=None, description="May a trainer without a GPU run it (default: gpus == 0)"
    )

    def cpu_ok(self) -> bool:
        """Whether a CPU-only trainer may run the job."""
        return self.allow_cpu if self.allow_cpu is not None else self.gpus == 0


@dataclass(frozen=True)
class ResourceClass:
    """A pool of trainers that can all give ``gpus`` GPUs of ``gpu_memory_gib`` each, or more."""

    name: str
    gpus: int
    gpu_memory_gib: float
    description: str

    def gives(self, needs: Resources) -> bool:
        """Whether every trainer of this class has what the job needs."""
        if self.gpus == 0:
            return needs.cpu_ok()
        return self.gpus >= max(1, needs.gpus) and self.gpu_memory_gib >= needs.min_gpu_memory_gib

    def served_by(self, gpus: int, smallest_gpu_gib: float) -> bool:
        """Whether a trainer with these devices can take every job of this class."""
        return self.gpus > 0 and gpus >= self.gpus and smallest_gpu_gib >= self.gpu_memory_gib


# Cheapest first: a job goes to the first class that gives what it needs.
CLASSES: tuple[ResourceClass, ...] = (
    ResourceClass("cpu", 0, 0, "no GPU needed: CPU trainers, and GPU trainers taking CPU work"),
    ResourceClass("gpu", 1, 0, "one GPU of any size"),
    ResourceClass("gpu-large", 1, 40, "one GPU with at least 40 GiB"),
    ResourceClass("multi-gpu", 4, 0, "two to four GPUs on one node"),
)
CLASS_NAMES: tuple[str, ...] = tuple(c.name for c in CLASSES)
BY_NAME: dict[str, ResourceClass] = {c.name: c for c in CLASSES}
DEFAULT_CLASS = "cpu"


def route(needs: Resources) -> ResourceClass | None:
    """The class a job with these needs goes to; None when no class gives them."""
    return next((c for c in CLASSES if c.gives(needs)), None)


def no_class_message(needs: Resources) -> str:
    """Why no class fits, and what the classes are."""
    listed = "; ".join(f"{c.name}: {c.description}" for c in CLASSES)
    return (
        f"resources ask for {needs.gpus} GPU(s) with {needs.min_gpu_memory_gib:g} GiB each"
        f"{'' if needs.cpu_ok() else ' (no CPU)'}, which no resource class gives: {listed}"
    )


# The memory a driver reports is a few percent under the card's nominal size (an "A100 40GB"
# reports 39.4 GiB): detection allows this much.
REPORTED_MEMORY_SLACK = 0.05


def classes_for_devices(gpu_memory_bytes: list[int], takes_cpu_jobs: bool) -> tuple[str, ...]:
    """The classes a trainer with these GPUs serves (cpu too when it takes CPU work or has none)."""
    smallest = min(gpu_memory_bytes, default=0) / GIB * (1 + REPORTED_MEMORY_SLACK)
    served = [c.name for c in CLASSES if c.served_by(len(gpu_memory_bytes), smallest)]
    if takes_cpu_jobs or not gpu_memory_bytes:
        served.insert(0, DEFAULT_CLASS)
    return tuple(served)


# -- ranking (the pick rule and the aging rule) --------------------------------------------


def effective_level(priority: str, waited_s: float, aging_s: float, enabled: bool = True) -> int:
    """A job's level after aging: one level up per ``aging_s`` waited, never above the top."""
    if not enabled:
        return 0
    level = LEVEL.get(priority, 0)
    if aging_s <= 0 or not math.isfinite(waited_s):
        return level
    return min(TOP_LEVEL, level + int(max(0.0, waited_s) // aging_s))


def class_rank(name: str) -> int:
    """Among equal levels, the more demanding class first (GPU work before CPU work)."""
    return CLASS_NAMES.index(name) if name in BY_NAME else -1


@dataclass(frozen=True)
class Waiting:
    """What the pick rule compares of one waiting job."""

    priority: str
    resource_class: str
    since_ms: int  # when it was validated (the record's timestamp), ms since the epoch
    where: tuple[str, int, int] = ("", 0, 0)  # topic, partition, offset: a stable last tiebreak

    def order(
        self, now_ms: int, aging_s: float, enabled: bool = True
    ) -> tuple[int, int, int, tuple[str, int, int]]:
        """Sort key, ascending = taken first: higher level, more demanding class, older."""
        waited_s = max(0, now_ms - self.since_ms) / 1000
        level = effective_level(self.priority, waited_s, aging_s, enabled)
        return (-level, -class_rank(self.resource_class), self.since_ms, self.where)
