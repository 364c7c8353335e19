"""The trainer's own verdict on a validated job, before anything is built (defence in depth).

Anyone who can write jobs.validated can hand a trainer a job, so the trainer trusts nothing the
validator said. It re-checks the typed JobValidated it was given: the submission the job stands
for is every field a submission has (``JobRequest``'s fields, taken from the job, so none is
dropped: priority, resources, register_as, sweep_id and trial included), run through the
validator's own checks (caps, estimates, the registered parent in the store, what the job may
read) and its tenant's priority ceiling, on *this* machine's disk and settings. Then what the
validator derived must be what the job says (its kind, its resource class, a trial's id), the
record must have come on the job's home topic (its class and priority's), and the estimate must
fit this worker's devices and memory budget. A job whose memory only the model's config.json
tells (a hub model) is estimated by the worker once that file is in, before any weights.
"""

from __future__ import annotations

import asyncio
from typing import Any

from sparktrainer.contracts.access import Access
from sparktrainer.contracts.caps import Capacity, check_capacity
from sparktrainer.contracts.events import JobValidated
from sparktrainer.contracts.jobspec import JobRequest
from sparktrainer.contracts.sweeps import trial_id
from sparktrainer.contracts.tenants import Tenants
from sparktrainer.settings import Settings
from sparktrainer.storage.s3 import ObjectStore
from sparktrainer.validation.checks import ValidationResult, validate_job
from sparktrainer.validation.tenancy import priority_problems

# Every field of a submission is one of a validated job's (a test keeps it so).
SUBMISSION_FIELDS = frozenset(JobRequest.model_fields)


def job_body(job: JobValidated) -> dict[str, Any]:
    """The submission a validated job stands for: every field a submission has, from the job."""
    return job.model_dump(mode="json", include=set(SUBMISSION_FIELDS))


def refusals(
    job: JobValidated,
    store: ObjectStore | None,
    settings: Settings,
    capacity: Capacity | None,
    *,
    topic: str,
    tenants: Tenants | None = None,
) -> list[str]:
    """Why this trainer will not run ``job``, read from ``topic`` (empty: it will). Blocking:
    S3 reads. ``tenants``: the tenants file (None: the default tenant alone)."""
    access = Access.from_settings(settings)
    result = validate_job(job_body(job), store, settings.limits, access=access)
    tenant = (tenants or Tenants()).get(job.tenant)
    if tenant is None:
        result.errors.append(f"tenant '{job.tenant}' is not in this trainer's tenants file")
    else:
        result.errors.extend(priority_problems(result, tenant))
    if result.errors:
        return result.errors
    if problems := disagreements(job, result, topic):
        return problems
    if capacity is None:
        return []
    return check_capacity(result.estimate, result.config, capacity)


def disagreements(job: JobValidated, result: ValidationResult, topic: str) -> list[str]:
    """Where the job says other than what validating it gives, or came by another topic."""
    found = result.kind.name if result.kind else "none"
    out = []
    if found != job.config_kind:
        out.append(f"config_kind '{job.config_kind}' does not match its config (which is {found})")
    if result.resource_class != job.resource_class:
        out.append(f"resource_class '{job.resource_class}' does not match its resources (which "
                   f"need '{result.resource_class}')")  # fmt: skip
    if job.sweep_id is not None and job.job_id != trial_id(job.sweep_id, job.trial or 0):
        out.append(f"job_id '{job.job_id}' is not trial {job.trial}'s id of sweep "
                   f"'{job.sweep_id}' ({trial_id(job.sweep_id, job.trial or 0)})")  # fmt: skip
    if topic != job.home_topic():
        out.append(f"the job came on {topic[:200]}, not on its home topic {job.home_topic()} "
                   f"(class '{job.resource_class}', priority '{job.priority}')")  # fmt: skip
    return out


async def refusals_of(
    job: JobValidated,
    store: ObjectStore | None,
    settings: Settings,
    capacity: Capacity | None,
    *,
    topic: str,
    tenants: Tenants | None = None,
) -> list[str]:
    """:func:`refusals` off the event loop."""
    return await asyncio.to_thread(
        refusals, job, store, settings, capacity, topic=topic, tenants=tenants
    )
