"""Scheduling events: sweeps (the validator's and the sweep controller's) and trainer heartbeats."""

from __future__ import annotations

from typing import Any, ClassVar, Literal

from pydantic import Field

from sparktrainer.contracts import topics
from sparktrainer.contracts.event_base import Event, Instant, RecordSource, deterministic_id, now
from sparktrainer.contracts.jobspec import Framework, JobRequest, SafeId
from sparktrainer.contracts.scheduling import DEFAULT_PRIORITY, Priority, Resources
from sparktrainer.contracts.sweeps import SweepConfig, trial_id
from sparktrainer.contracts.tenants import DEFAULT_TENANT, TenantName

# -- sweeps (topic sparktrainer.sweeps, key = sweep id) -------------------------------------


class SweepEvent(Event):
    """Base of the events on sparktrainer.sweeps: keyed by the sweep, so one partition holds it."""

    topic: ClassVar[str] = topics.SWEEPS

    sweep_id: str

    def subject(self) -> str:
        return self.sweep_id


class SweepValidated(SweepEvent):
    """A sweep that passed validation: the search, normalized, for the sweep controller."""

    ce_type: ClassVar[str] = "io.sparktrainer.sweep.validated.v1"

    name: str
    framework: Framework
    config: SweepConfig
    trials: int = Field(description="How many trials it runs (max_trials, or the grid's size)")
    priority: Priority = DEFAULT_PRIORITY
    resources: Resources = Resources()
    description: str | None = None
    tags: list[str] = Field(default_factory=list)
    submitted_by: str | None = None
    warnings: list[str] = Field(default_factory=list)
    source: RecordSource | None = None
    validated_at: Instant = Field(default_factory=now)
    tenant: TenantName = Field(
        default=DEFAULT_TENANT,
        description="The tenant its submission door established (contracts/tenants.py)",
    )


class TrialPlanned(SweepEvent):
    """The controller chose trial ``trial``'s parameters; written before the trial is submitted."""

    ce_type: ClassVar[str] = "io.sparktrainer.sweep.trial-planned.v1"

    trial: int
    job_id: str
    params: dict[str, Any]
    planned_at: Instant = Field(default_factory=now)

    def event_id(self) -> str:
        return deterministic_id(self.ce_type, self.sweep_id, self.trial)


class TrialSubmitted(SweepEvent):
    """The broker took the trial's job submission (a restart does not submit it again)."""

    ce_type: ClassVar[str] = "io.sparktrainer.sweep.trial-submitted.v1"

    trial: int
    job_id: str

    def event_id(self) -> str:
        return deterministic_id(self.ce_type, self.sweep_id, self.trial)


class TrialStopped(SweepEvent):
    """Early stopping chose to stop a losing trial; its cancel request follows."""

    ce_type: ClassVar[str] = "io.sparktrainer.sweep.trial-stopped.v1"

    trial: int
    job_id: str
    rule: str
    epoch: int
    reason: str
    at: Instant = Field(default_factory=now)

    def event_id(self) -> str:
        return deterministic_id(self.ce_type, self.sweep_id, self.trial)


class SweepEnded(SweepEvent):
    """Every trial has ended: the best one, and the model registered as the sweep's result."""

    ce_type: ClassVar[str] = "io.sparktrainer.sweep.ended.v1"

    status: Literal["completed", "failed", "cancelled"]
    best_trial: int | None = None
    best_job_id: str | None = None
    model_id: str | None = None
    value: float | None = None
    reason: str | None = None
    at: Instant = Field(default_factory=now)


class TrialRejected(SweepEvent):
    """The validator could not take a trial under its id (another job holds it): the trial has
    failed, and the sweep goes on without it (never waits for it)."""

    ce_type: ClassVar[str] = "io.sparktrainer.sweep.trial-rejected.v1"

    trial: int
    job_id: str
    errors: list[str]
    at: Instant = Field(default_factory=now)

    def event_id(self) -> str:
        return deterministic_id(self.ce_type, self.sweep_id, self.trial)


# -- the sweep controller's trials (topic sparktrainer.sweeps.trials, key = trial job id) ----


class TrialSubmission(Event):
    """The sweep controller submits a trial: the only way a job gets ``sweep_id`` and ``trial``.

    Its topic's only writer is the sweep-controller role, so ``tenant`` (the sweep's) is the
    controller's word; the validator checks ``job`` as it checks any submission.
    """

    ce_type: ClassVar[str] = "io.sparktrainer.sweep.trial-submission.v1"
    topic: ClassVar[str] = topics.SWEEP_TRIALS

    sweep_id: SafeId
    trial: int = Field(ge=1)
    tenant: TenantName
    job: JobRequest

    def subject(self) -> str:
        return trial_id(self.sweep_id, self.trial)

    def event_id(self) -> str:
        return deterministic_id(self.ce_type, self.sweep_id, self.trial)


# -- trainers (topic sparktrainer.trainers, key = trainer id) ------------------------------


class TrainerHeartbeat(Event):
    """A trainer is alive: the classes it serves, its devices, the job it runs."""

    ce_type: ClassVar[str] = "io.sparktrainer.trainer.heartbeat.v1"
    topic: ClassVar[str] = topics.TRAINERS

    trainer_id: str
    group: str
    classes: list[str]
    gpus: int = 0
    gpu_memory_gib: float = 0.0  # the smallest GPU's
    devices: list[str] = Field(default_factory=list)
    running_job_id: str | None = None
    # Who runs what across the fleet, for every trainer's fair share (scheduling/usage.py):
    running_tenant: str | None = Field(default=None, max_length=64)
    running_class: str | None = Field(default=None, max_length=32)
    running_gpus: int = Field(default=0, ge=0, le=64)
    every_s: float
    stopping: bool = False
    at: Instant = Field(default_factory=now)

    def subject(self) -> str:
        return self.trainer_id

    def event_id(self) -> str:
        return deterministic_id(self.ce_type, self.trainer_id, self.at.isoformat())


SWEEP_EVENTS: tuple[type[SweepEvent], ...] = (
    SweepValidated,
    TrialPlanned,
    TrialSubmitted,
    TrialStopped,
    TrialRejected,
    SweepEnded,
)
