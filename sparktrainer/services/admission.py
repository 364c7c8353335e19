"""The trainer's own verdict on a validated job, before anything is built (defence in depth).

Anyone who can write jobs.validated can hand a trainer a job, so the trainer trusts nothing the
validator said: it rebuilds the job's body from the event and runs the validator's checks again
(caps, estimates, the registered parent in the store, what the job may read), on *this*
machine's disk and settings, then checks the estimate against its worker's devices and memory
budget. A job whose memory only the model's config.json tells (a hub model) is estimated by the
worker once that file is in, before any weights are fetched.
"""

from __future__ import annotations

import asyncio
from typing import Any

from sparktrainer.contracts.access import Access
from sparktrainer.contracts.caps import Capacity, check_capacity
from sparktrainer.contracts.events import JobValidated
from sparktrainer.settings import Settings
from sparktrainer.storage.s3 import ObjectStore
from sparktrainer.validation.checks import validate_job


def job_body(job: JobValidated) -> dict[str, Any]:
    """The submission a validated job stands for, as the validator would have read it."""
    return {
        "job_id": job.job_id,
        "name": job.name,
        "type": job.type,
        "framework": job.framework,
        "config": job.config.model_dump(mode="json"),
        "description": job.description,
        "tags": list(job.tags),
        "license": job.license,
        "domain": job.domain,
        "submitted_by": job.submitted_by,
    }


def refusals(
    job: JobValidated, store: ObjectStore | None, settings: Settings, capacity: Capacity | None
) -> list[str]:
    """Why this trainer will not run ``job`` (empty: it will). Blocking: S3 reads."""
    access = Access.from_settings(settings)
    result = validate_job(job_body(job), store, settings.limits, access=access)
    if result.errors:
        return result.errors
    if result.kind is None or result.kind.name != job.config_kind:
        found = result.kind.name if result.kind else "none"
        return [f"config_kind '{job.config_kind}' does not match its config (which is {found})"]
    if capacity is None:
        return []
    return check_capacity(result.estimate, result.config, capacity)


async def refusals_of(
    job: JobValidated, store: ObjectStore | None, settings: Settings, capacity: Capacity | None
) -> list[str]:
    """:func:`refusals` off the event loop."""
    return await asyncio.to_thread(refusals, job, store, settings, capacity)
