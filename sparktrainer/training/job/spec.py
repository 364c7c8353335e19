"""What a job asks for: the validated event, which attempt this is, and its typed config."""

from __future__ import annotations

from dataclasses import dataclass

from sparktrainer.contracts.events import JobValidated
from sparktrainer.contracts.jobspec import TrainingOptions
from sparktrainer.settings import Limits


@dataclass(kw_only=True)
class JobSpec:
    """One job's spec, as the training worker received it."""

    job: JobValidated
    attempt: int = 1

    @property
    def job_id(self) -> str:
        """The job's id, which is also the id of the model it will register."""
        return self.job.job_id

    @property
    def config(self) -> TrainingOptions:
        """The job's normalized config, typed (parsed once, with the event)."""
        return self.job.config

    def config_max_runtime_s(self, cap_s: float) -> float:
        """The job's own time limit, capped by ``cap_s`` (the settings' limit)."""
        own = self.job.config.max_runtime_s
        return min(float(own), cap_s) if own else cap_s


def time_limit_s(job: JobValidated, limits: Limits) -> float:
    """How long a job may run: its own max_runtime_s, within the deployment's cap."""
    return JobSpec(job=job).config_max_runtime_s(limits.job_runtime_s)
