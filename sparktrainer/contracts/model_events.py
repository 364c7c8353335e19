"""The registry's own events, on ``sparktrainer.models.changes``: aliases and retirement.

Alias moves are keyed by the model *name* (one name's moves are totally ordered), retirement
by the model id. Published by the API and the CLI (the janitor publishes ``model.purged``), the
only writers Kafka's ACLs allow (``topics.WRITERS``); each stamps ``tenant`` with the tenant it
established (the API from the bearer token, the CLI from ``SPARKTRAINER_TENANT``, the janitor:
the model's owner). The projector folds them (``registry/names.py``, ``registry/retirement.py``)
and, like the validator and the janitor, lets only the owner's changes count
(``contracts/ownership.py``).
"""

from __future__ import annotations

from typing import Annotated, ClassVar

from pydantic import AfterValidator, Field, StrictInt

from sparktrainer.contracts import topics
from sparktrainer.contracts.event_base import Event, Instant, deterministic_id, now
from sparktrainer.contracts.jobspec import ModelName, SafeId, check_alias
from sparktrainer.contracts.tenants import DEFAULT_TENANT, TenantName

AliasName = Annotated[str, AfterValidator(lambda a: check_alias(a, settable=True))]
Version = Annotated[StrictInt, Field(ge=1, le=999_999_999)]


class ModelChange(Event):
    """Base of the events on models.changes: whose change, who asked, when, and why."""

    topic: ClassVar[str] = topics.MODELS_CHANGES

    tenant: TenantName = Field(
        default=DEFAULT_TENANT,
        description="The tenant the writer established (the owner's, or the change is skipped)",
    )
    by: str | None = Field(
        default=None, max_length=256, description="Who asked: the established tenant, or a service"
    )
    actor: str | None = Field(
        default=None, max_length=256, description="Free text the requester gave (a claim, shown)"
    )
    at: Instant = Field(default_factory=now)
    reason: str | None = Field(default=None, max_length=1024)


class ModelAliasChange(ModelChange):
    """Base of the alias moves of one name (key = the name)."""

    name: ModelName
    alias: AliasName

    def subject(self) -> str:
        return self.name


class ModelAliasSet(ModelAliasChange):
    """``name@alias`` now points at ``version`` of ``name`` (a move when it pointed elsewhere)."""

    ce_type: ClassVar[str] = "io.sparktrainer.model.alias-set.v1"

    version: Version

    def event_id(self) -> str:
        return deterministic_id(self.ce_type, self.name, self.alias, self.version, self.at)


class ModelAliasRemoved(ModelAliasChange):
    """``name@alias`` no longer points anywhere."""

    ce_type: ClassVar[str] = "io.sparktrainer.model.alias-removed.v1"

    def event_id(self) -> str:
        return deterministic_id(self.ce_type, self.name, self.alias, self.at)


class ModelRetirement(ModelChange):
    """Base of the events that retire one model (key = its id)."""

    model_id: SafeId

    def subject(self) -> str:
        return self.model_id


class ModelArchived(ModelRetirement):
    """The model leaves the default lists; it stays readable and usable as a parent."""

    ce_type: ClassVar[str] = "io.sparktrainer.model.archived.v1"


class ModelDeleted(ModelRetirement):
    """The model is gone for good: no fine-tunes, no downloads; files removed after a grace."""

    ce_type: ClassVar[str] = "io.sparktrainer.model.deleted.v1"


class ModelPurged(ModelRetirement):
    """The janitor removed a deleted model's files from the object store."""

    ce_type: ClassVar[str] = "io.sparktrainer.model.purged.v1"

    files_removed: Annotated[StrictInt, Field(ge=0)]


MODEL_EVENTS: tuple[type[ModelChange], ...] = (
    ModelAliasSet,
    ModelAliasRemoved,
    ModelArchived,
    ModelDeleted,
    ModelPurged,
)
