"""Who asks: the tenant a submission's topic establishes, and what that tenant may ask for.

The tenant comes from where a record was read, never from its body: a tenant's door
(``sparktrainer.tenants.{name}.jobs.submitted``, written only by that tenant's Kafka users and
the trusted roles, see contracts/topics.py) or the plain door (the default tenant's). Plain
functions, no Kafka: the door calls them on every record.
"""

from __future__ import annotations

from typing import Any

from sparktrainer.contracts.ownership import may_register, name_taken
from sparktrainer.contracts.refs import ModelDirectory
from sparktrainer.contracts.schedule_events import TrialSubmission
from sparktrainer.contracts.scheduling import LEVEL
from sparktrainer.contracts.tenants import Tenant, Tenants
from sparktrainer.contracts.topics import submission_tenant
from sparktrainer.storage.outcomes import claimed_by
from sparktrainer.storage.s3 import ObjectStore
from sparktrainer.validation.checks import ValidationResult

LINEAGE_FIELDS = ("sweep_id", "trial")


def door_tenant(topic: str, tenants: Tenants) -> tuple[Tenant | None, str | None]:
    """The configured tenant whose door ``topic`` is, or None and why there is none."""
    name = submission_tenant(topic)
    if name is None:
        return None, f"'{topic[:200]}' is not a submission door: submit on a tenant's door"
    tenant = tenants.get(name)
    if tenant is None:
        return None, (
            f"tenant '{name}' (from the topic {topic[:200]}) is not in the tenants file "
            "(SPARKTRAINER_TENANTS_FILE): ask an operator to add it"
        )
    return tenant, None


def lineage_problems(body: Any) -> list[str]:
    """A submission on a door may not say it is a sweep's trial: only the controller says so."""
    if not isinstance(body, dict):
        return []
    named = [f for f in LINEAGE_FIELDS if body.get(f) is not None]
    if not named:
        return []
    return [
        f"{' and '.join(named)} may not be set on a submission: only the sweep controller "
        "submits a sweep's trials (submit a sweep with type 'sweep', or remove these fields)"
    ]


def priority_problems(result: ValidationResult, tenant: Tenant) -> list[str]:
    """What the job (a sweep: and its base, which its trials take) asks above its tenant's
    ``max_priority``."""
    if result.request is None:
        return []
    asked = [("priority", result.request.priority)]
    if result.sweep is not None and isinstance(result.sweep.base.get("priority"), str):
        asked.append(("config.base.priority", result.sweep.base["priority"]))
    ceiling = LEVEL[tenant.max_priority]
    return [
        f"{field} '{value}' is above what tenant '{tenant.name}' may ask for "
        f"(max_priority '{tenant.max_priority}', in the tenants file): ask for "
        f"'{tenant.max_priority}' or lower"
        for field, value in dict(asked).items()
        if LEVEL.get(value, 0) > ceiling
    ]


def name_problems(
    result: ValidationResult, tenant: str, directory: ModelDirectory | None
) -> list[str]:
    """A ``register_as`` (a sweep's base's too: its trials and its model take it) that names
    another tenant's model name (contracts/ownership.py); without a registry view, none."""
    if result.request is None or directory is None:
        return []
    names = [result.request.register_as]
    if result.sweep is not None:
        names.append(result.sweep.base.get("register_as"))
    problems = []
    for name in dict.fromkeys(n for n in names if isinstance(n, str)):
        owner = directory.name_owner(name)
        if owner is not None and not may_register(owner, tenant):
            problems.append(name_taken(name, owner, tenant))
    return problems


def trial_tenant_problems(
    sub: TrialSubmission, tenants: Tenants, store: ObjectStore | None
) -> list[str]:
    """A trial's tenant is configured and, where the store says, the one that owns its sweep."""
    if tenants.get(sub.tenant) is None:
        return [f"tenant '{sub.tenant}' of sweep {sub.sweep_id} is not in the tenants file"]
    owner = claimed_by(store, sub.sweep_id) if store is not None else None
    if owner is not None and (owner.kind, owner.tenant) != ("sweep", sub.tenant):
        return [
            f"{sub.sweep_id} is not a sweep of tenant '{sub.tenant}' (its id is held by a "
            f"{owner.kind} of tenant '{owner.tenant}'): the trial is not submitted"
        ]
    return []


def tenant_problems(
    body: Any, result: ValidationResult, tenant: Tenant, directory: ModelDirectory | None
) -> list[str]:
    """What a door asks of a submission for its tenant, beyond the job's own checks: no trial
    lineage, the priority ceiling, model names of its own."""
    return [
        *lineage_problems(body),
        *priority_problems(result, tenant),
        *name_problems(result, tenant.name, directory),
    ]
