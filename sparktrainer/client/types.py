"""What the client returns: typed views of the API's and the read model's answers.

The read model's rows grow a column now and then (a new fold, a new field): these models type
the fields a caller relies on and keep the rest (``extra="allow"``), so an older client still
reads a newer API's answer.
"""

from __future__ import annotations

from typing import Any

from pydantic import BaseModel, ConfigDict


class Submitted(BaseModel):
    """A job on the bus: its id (given by the client when the body had none)."""

    model_config = ConfigDict(extra="allow")
    job_id: str
    status: str = "submitted"
    href: str | None = None


class JobVerdict(BaseModel):
    """The validator's verdict on a body, without submitting it."""

    model_config = ConfigDict(extra="allow")
    valid: bool
    errors: list[str] = []
    warnings: list[str] = []


class JobState(BaseModel):
    """One job as the read model folds it: status, last progress, errors and warnings."""

    model_config = ConfigDict(extra="allow")
    job_id: str
    status: str
    name: str | None = None
    progress: dict[str, Any] | None = None
    errors: list[str] = []
    warnings: list[str] = []
    model_id: str | None = None
    reason: str | None = None
    cause: str | None = None  # why a failed or cancelled job ended (contracts.failures)
    retriable: bool | None = None  # whether another attempt can help that cause
    signal: int | None = None  # the signal that ended the worker (cause crashed / oom_killed)
    updated_at: str | None = None

    @property
    def ended(self) -> bool:
        """Whether the job has reached its end (or never passed the door)."""
        return self.status in ("completed", "failed", "cancelled", "rejected")


class Model(BaseModel):
    """One registered model: id, status, metrics, artifacts, names and aliases."""

    model_config = ConfigDict(extra="allow")
    model_id: str
    status: str | None = None
    job_id: str | None = None
    metrics: dict[str, Any] = {}
    artifacts: list[dict[str, Any]] = []


class ModelFile(BaseModel):
    """One stored file of a model: its path under the model, size and sha256."""

    model_config = ConfigDict(extra="allow")
    path: str
    size_bytes: int
    sha256: str


class Listing(BaseModel):
    """One page of a listing: the items and how many there are in all."""

    model_config = ConfigDict(extra="allow")
    items: list[dict[str, Any]]
    total: int

    def jobs(self) -> list[JobState]:
        """The items as jobs."""
        return [JobState.model_validate(i) for i in self.items]

    def models(self) -> list[Model]:
        """The items as models."""
        return [Model.model_validate(i) for i in self.items]


class TenantUsage(BaseModel):
    """One tenant's use of the trainers since a day: totals, per class, per day and class.

    Each figure set holds ``attempts``, ``jobs``, ``wall_s`` (trainer-seconds), ``cpu_s`` and
    ``gpu_s`` (the trainer's own clock, contracts/usage.py).
    """

    model_config = ConfigDict(extra="allow")
    tenant: str
    since: str | None = None
    totals: dict[str, Any] = {}
    classes: list[dict[str, Any]] = []
    days: list[dict[str, Any]] = []
