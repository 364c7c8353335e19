"""Every event SparkTrainer publishes or reads: the contract other systems rely on.

Each event is a pydantic model with a CloudEvents type (``ce_type``) and the topic it lives
on. Models we produce forbid unknown keys; only the public door (jobs.submitted) forgives.
The shared base is ``event_base.py``; sweep and trainer events are ``schedule_events.py``.
"""

from __future__ import annotations

from typing import Any, ClassVar, Literal

from pydantic import BaseModel, ConfigDict, Field, model_validator

from sparktrainer.contracts import topics
from sparktrainer.contracts.data_identity import DataIdentity
from sparktrainer.contracts.event_base import (
    Event,
    Instant,
    RecordSource,
    derived_job_id,
    deterministic_id,
    now,
)
from sparktrainer.contracts.failures import FailureReason
from sparktrainer.contracts.jobspec import (
    Framework,
    JobType,
    ModelName,
    NonNegInt,
    SafeId,
    check_safe_id,
)
from sparktrainer.contracts.kinds import KINDS, JobConfig
from sparktrainer.contracts.schedule_events import SWEEP_EVENTS, TrainerHeartbeat, TrialSubmission
from sparktrainer.contracts.scheduling import (
    CLASS_NAMES,
    DEFAULT_CLASS,
    DEFAULT_PRIORITY,
    Priority,
    Resources,
)
from sparktrainer.contracts.submission import JobSubmitted
from sparktrainer.contracts.tenants import DEFAULT_TENANT, TenantName
from sparktrainer.contracts.usage import Measured

__all__ = ["Event", "JobSubmitted", "RecordSource", "derived_job_id", "deterministic_id", "now"]


class ParentRef(BaseModel):
    """The model a fine-tune named (``ID``, ``NAME:VERSION`` or ``NAME@ALIAS``) and what it was."""

    model_config = ConfigDict(extra="forbid")

    ref: str = Field(max_length=256)
    model_id: SafeId
    name: ModelName | None = None
    version: int | None = None
    alias: str | None = Field(default=None, max_length=64)


class JobValidated(Event):
    """A job that passed validation, with its normalized config (defaults filled in)."""

    ce_type: ClassVar[str] = "io.sparktrainer.job.validated.v1"
    topic: ClassVar[str] = topics.JOBS_VALIDATED

    job_id: SafeId
    name: str
    type: JobType
    framework: Framework
    config_kind: str = Field(description="The job kind (contracts/kinds.py) that parses config")
    config: JobConfig
    description: str | None = None
    tags: list[str] = Field(default_factory=list)
    license: str | None = None
    domain: str | None = None
    submitted_by: str | None = None
    warnings: list[str] = Field(default_factory=list)
    source: RecordSource | None = None
    validated_at: Instant = Field(default_factory=now)
    register_as: ModelName | None = None
    parent_ref: ParentRef | None = Field(
        default=None, description="The reference a fine-tune named, and what it resolved to"
    )
    priority: Priority = DEFAULT_PRIORITY
    resources: Resources = Resources()
    resource_class: str = Field(
        default=DEFAULT_CLASS, description="contracts/scheduling.py: which trainers can run it"
    )
    sweep_id: SafeId | None = None
    trial: NonNegInt | None = None
    tenant: TenantName = DEFAULT_TENANT  # its submission door's (contracts/tenants.py)

    def home_topic(self) -> str:
        """The topic of the job's resource class and priority."""
        return topics.validated_topic(self.resource_class, self.priority)

    @classmethod
    def topics(cls) -> tuple[str, ...]:
        return topics.VALIDATED_TOPICS

    @model_validator(mode="before")
    @classmethod
    def _typed_config(cls, data: Any) -> Any:
        """Parse ``config`` with the class of its ``config_kind``: typed once, here."""
        if isinstance(data, dict) and isinstance(data.get("config"), dict):
            kind = KINDS.get(str(data.get("config_kind")))
            if kind is None:
                raise ValueError(
                    f"unknown config_kind {str(data.get('config_kind'))[:60]!r}: "
                    f"one of {', '.join(KINDS)}"
                )
            data = {**data, "config": kind.config.model_validate(data["config"])}
        return data

    @model_validator(mode="after")
    def _kind_matches(self) -> JobValidated:
        kind = KINDS.get(self.config_kind)
        if kind is None or type(self.config) is not kind.config or kind.framework != self.framework:
            raise ValueError(f"config does not match config_kind '{self.config_kind[:60]}'")
        if self.resource_class not in CLASS_NAMES:
            raise ValueError(
                f"unknown resource_class {self.resource_class[:60]!r}: "
                f"one of {', '.join(CLASS_NAMES)}"
            )
        parent = kind.parent_id(self.config)
        if parent is not None:  # the validator resolved any reference to the concrete id
            check_safe_id(parent)
        return self


class JobRejected(Event):
    """A submission that failed validation: every error at once, and where it came from."""

    ce_type: ClassVar[str] = "io.sparktrainer.job.rejected.v1"
    topic: ClassVar[str] = topics.JOBS_REJECTED

    job_id: SafeId
    valid: Literal[False] = False
    errors: list[str]
    warnings: list[str] = Field(default_factory=list)
    name: str | None = None
    source: RecordSource | None = None
    raw_excerpt: str | None = Field(default=None, description="First bytes of the raw record")
    rejected_at: Instant = Field(default_factory=now)
    tenant: TenantName = DEFAULT_TENANT  # its door's tenant (the default: none was established)


class LifecycleEvent(Event):
    """Base of the events on jobs.lifecycle; ``attempt`` counts trainer takeovers."""

    topic: ClassVar[str] = topics.JOBS_LIFECYCLE
    status: ClassVar[str]

    job_id: SafeId
    attempt: int = 1
    at: Instant = Field(default_factory=now)

    def event_id(self) -> str:
        return deterministic_id(self.ce_type, self.job_id, self.attempt)


class JobStarted(LifecycleEvent):
    """A trainer took the job (or resumed it from a checkpoint)."""

    ce_type: ClassVar[str] = "io.sparktrainer.job.started.v1"
    status: ClassVar[str] = "running"

    name: str
    framework: str
    config_kind: str
    device: str
    worker: str
    resumed_from_epoch: int | None = None
    resumed_from_step: int | None = Field(
        default=None, description="The optimizer step the checkpoint it resumes from was taken at"
    )
    total_epochs: int
    skipped_checkpoints: list[str] = Field(default_factory=list)  # bad ones passed over, why


class JobProgress(LifecycleEvent):
    """Training progress: where it is, how it is doing, how long it has left."""

    ce_type: ClassVar[str] = "io.sparktrainer.job.progress.v1"
    status: ClassVar[str] = "running"

    epoch: int
    total_epochs: int
    step: int
    total_steps: int
    loss: float | None = None
    accuracy: float | None = None
    val_loss: float | None = None
    val_accuracy: float | None = None
    learning_rate: float | None = None
    samples_per_s: float | None = None
    eta_s: float | None = None
    phase: Literal["step", "epoch"] = Field(
        default="step",
        description="'step': the running means since the epoch began; 'epoch': the epoch's end, "
        "with validation",
    )
    gpu_memory_bytes: int | None = Field(
        default=None, ge=0, description="Peak GPU memory allocated since the last report"
    )

    def event_id(self) -> str:
        # An epoch's end and its last step's report share (epoch, step): the phase parts them.
        end = ("epoch",) if self.phase == "epoch" else ()
        parts = (self.job_id, self.attempt, self.epoch, self.step, *end)
        return deterministic_id(self.ce_type, *parts)


class CheckpointSaved(LifecycleEvent):
    """A resumable checkpoint is in S3 under ``checkpoints/{job_id}/``."""

    ce_type: ClassVar[str] = "io.sparktrainer.job.checkpoint-saved.v1"
    status: ClassVar[str] = "running"

    epoch: int
    step: int
    key: str
    size_bytes: int
    upload_s: float | None = Field(default=None, ge=0, description="How long the upload took")
    sha256: str | None = Field(default=None, description="Of the file; checked before a resume")

    def event_id(self) -> str:
        return deterministic_id(self.ce_type, self.job_id, self.epoch, self.step)


class JobCompleted(LifecycleEvent, Measured):
    """The job finished and its model is registered under ``model_id``."""

    ce_type: ClassVar[str] = "io.sparktrainer.job.completed.v1"
    status: ClassVar[str] = "completed"

    model_id: SafeId
    metrics: dict[str, float] = Field(default_factory=dict)
    duration_s: float | None = None

    def event_id(self) -> str:
        return deterministic_id(self.ce_type, self.job_id)


class JobFailed(LifecycleEvent, Measured):
    """The job ended without a model; ``reason`` says why, ``retriable`` whether to retry."""

    ce_type: ClassVar[str] = "io.sparktrainer.job.failed.v1"
    status: ClassVar[str] = "failed"

    reason: str
    error_type: str
    retriable: bool = False
    cause: FailureReason | None = Field(
        default=None, description="Why, machine-readable (contracts/failures.py); None in old logs"
    )
    signal: int | None = Field(
        default=None, ge=1, le=128, description="The signal that ended the worker (cause crashed)"
    )

    def event_id(self) -> str:
        return deterministic_id(self.ce_type, self.job_id)


class JobCancelled(LifecycleEvent, Measured):
    """The job stopped on request; no model is registered."""

    ce_type: ClassVar[str] = "io.sparktrainer.job.cancelled.v1"
    status: ClassVar[str] = "cancelled"

    reason: str = "cancel requested"
    already_ended: str | None = Field(
        default=None, description="Set when the cancel came after the job had ended"
    )
    cause: FailureReason | None = Field(
        default=None, description="cancelled or preempted (contracts/failures.py); None in old logs"
    )
    retriable: bool = Field(default=False, description="Whether the job will run again (preempted)")

    def event_id(self) -> str:
        return deterministic_id(self.ce_type, self.job_id, self.already_ended or "")


class JobPreempted(LifecycleEvent, Measured):
    """The attempt stopped as its trainer went away (SIGTERM, a notice); not an end."""

    ce_type: ClassVar[str] = "io.sparktrainer.job.preempted.v1"
    status: ClassVar[str] = "running"  # between owners; the next JobStarted takes it over

    reason: str
    cause: FailureReason = FailureReason.PREEMPTED
    step: int | None = Field(
        default=None,
        description="The step of the checkpoint taken at the stop, where the next attempt "
        "resumes; None: none in the grace (it resumes from the last periodic one)",
    )
    retriable: bool = Field(default=True, description="Always: the job will run again")


class CancelRequested(Event):
    """A request on jobs.control to stop a job at its next step."""

    ce_type: ClassVar[str] = "io.sparktrainer.job.cancel-requested.v1"
    topic: ClassVar[str] = topics.JOBS_CONTROL

    job_id: SafeId
    reason: str = "cancel requested"
    requested_by: str | None = None
    requested_at: Instant = Field(default_factory=now)
    tenant: TenantName = DEFAULT_TENANT  # who asks, stamped by its (trusted) writer

    def event_id(self) -> str:
        return deterministic_id(self.ce_type, self.job_id, self.requested_at.isoformat())


class Artifact(BaseModel):
    """One file of a registered model."""

    model_config = ConfigDict(extra="forbid")

    path: str = Field(description="Key relative to the model's prefix, e.g. 'model.pth'")
    size_bytes: int
    sha256: str


class ModelRegistered(Event):
    """A model whose files are all uploaded; key = model id (= the job id that trained it)."""

    ce_type: ClassVar[str] = "io.sparktrainer.model.registered.v1"
    topic: ClassVar[str] = topics.MODELS_REGISTERED

    model_id: SafeId
    job_id: SafeId
    name: str
    framework: Literal["pytorch", "huggingface"]
    task: str = "classification"
    architecture: dict[str, Any]
    artifacts: list[Artifact]
    storage_prefix: str
    metrics: dict[str, float] = Field(default_factory=dict)
    base_model_id: SafeId | None = None
    lineage: list[str] = Field(default_factory=list, description="Ancestors, nearest first")
    data: DataIdentity | None = Field(
        default=None, description="What the model was trained on (None: not recorded)"
    )
    created_at: Instant = Field(default_factory=now)
    tags: list[str] = Field(default_factory=list)
    license: str | None = None
    domain: str | None = None
    description: str | None = None
    register_as: ModelName | None = Field(
        default=None, description="The name this model is the next version of (key: the name)"
    )
    tenant: TenantName = Field(
        default=DEFAULT_TENANT, description="The tenant of the job that trained it (its owner)"
    )

    def subject(self) -> str:
        return self.model_id

    def event_id(self) -> str:
        return deterministic_id(self.ce_type, self.model_id)

    def partition_key(self) -> str:
        """Every version of a name in one partition, in order: versions are numbered by it."""
        return self.register_as or self.model_id


LIFECYCLE_EVENTS: tuple[type[LifecycleEvent], ...] = (
    JobStarted,
    JobProgress,
    CheckpointSaved,
    JobCompleted,
    JobFailed,
    JobCancelled,
    JobPreempted,
)
OWNED_EVENTS: tuple[type[Event], ...] = (
    JobValidated,
    JobRejected,
    *LIFECYCLE_EVENTS,
    CancelRequested,
    ModelRegistered,
    *SWEEP_EVENTS,
    TrainerHeartbeat,
    TrialSubmission,
)
EVENT_TYPES: dict[str, type[BaseModel]] = {
    JobSubmitted.ce_type: JobSubmitted,
    **{cls.ce_type: cls for cls in OWNED_EVENTS},
}
TERMINAL_STATUSES = ("completed", "failed", "cancelled")
