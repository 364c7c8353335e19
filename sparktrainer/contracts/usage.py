"""What an attempt used: wall seconds on its trainer, the GPUs it held, its worker's CPU seconds.

Measured by the trainer's own clock (``training/worker/clock.py``) and carried on the attempt's
end event (``usage`` on JobCompleted, JobFailed, JobCancelled and JobPreempted: a list, because
one end also closes the attempts a trainer retried in place before it). The read model folds
them per attempt, job and tenant (``registry/usage.py``); the trainer counts them for Prometheus.

GPU-seconds are ``wall_s x gpus``: an attempt holds its devices from the moment its worker takes
it to its outcome, whether it computes or waits on a download. CPU-seconds are the user + system
time of the worker process and its DDP ranks over that span.
"""

from __future__ import annotations

from typing import Annotated

from pydantic import BaseModel, ConfigDict, Field, StrictInt

MAX_SECONDS = 1e9  # about 31 years: a claimed figure above it is no measurement
MAX_USAGES = 64  # attempts one end may close (the attempt limit is far below)

Seconds = Annotated[float, Field(ge=0, le=MAX_SECONDS)]


class AttemptUsage(BaseModel):
    """One attempt's use of its trainer: how long it held it, its GPUs, its CPU time."""

    model_config = ConfigDict(extra="forbid", frozen=True, allow_inf_nan=False)

    attempt: Annotated[StrictInt, Field(ge=1)]
    wall_s: Seconds = Field(description="From the worker taking the attempt to its outcome")
    gpus: Annotated[StrictInt, Field(ge=0, le=1024)] = Field(
        default=0, description="GPUs the attempt held (0 on a CPU trainer)"
    )
    cpu_s: Seconds = Field(description="User + system CPU time of the worker and its ranks")

    @property
    def gpu_s(self) -> float:
        """GPU-seconds: the wall time it held its GPUs, times how many."""
        return self.wall_s * self.gpus


class Measured(BaseModel):
    """The field an attempt's end event carries (empty in logs from before accounting)."""

    usage: list[AttemptUsage] = Field(
        default_factory=list,
        max_length=MAX_USAGES,
        description="What each attempt this end closes used (contracts/usage.py); empty when "
        "none ran (refused, cancelled before it started) or in older logs",
    )
