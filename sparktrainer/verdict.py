"""The validator's verdict on a job body, for callers outside Kafka (the API, the CLI).

Same checks as the validator consumer: this calls the validation package, it never copies it.
"""

from __future__ import annotations

import asyncio
from dataclasses import dataclass, field
from typing import Any

from sparktrainer.contracts.access import Access
from sparktrainer.contracts.refs import ModelDirectory
from sparktrainer.contracts.tenants import load_tenants
from sparktrainer.settings import Settings
from sparktrainer.storage.s3 import ObjectStore
from sparktrainer.validation.checks import ValidationResult
from sparktrainer.validation.sweeps import validate_submission
from sparktrainer.validation.tenancy import name_problems, tenant_problems


@dataclass(frozen=True)
class Verdict:
    """Whether a job would be accepted, with every error and warning."""

    valid: bool
    errors: list[str] = field(default_factory=list)
    warnings: list[str] = field(default_factory=list)

    def as_dict(self) -> dict[str, Any]:
        """The API's answer shape: ``{"valid", "errors", "warnings"}``."""
        return {"valid": self.valid, "errors": self.errors, "warnings": self.warnings}


async def check(
    body: Any,
    store: ObjectStore | None,
    settings: Settings,
    directory: ModelDirectory | None = None,
    tenant: str | None = None,
) -> Verdict:
    """Run the validator's checks on a body (store and registry lookups off the event loop);
    with ``tenant``, also the door's rules for that tenant (validation/tenancy.py: no trial
    lineage, its priority ceiling, model names of its own)."""
    access = Access.from_settings(settings)
    known = load_tenants(settings.tenants_file).get(tenant) if tenant is not None else None

    def judged() -> ValidationResult:
        result = validate_submission(body, store, settings.limits, directory, access)
        if known is not None:
            result.errors.extend(tenant_problems(body, result, known, directory))
        elif tenant is not None:
            result.errors.extend(name_problems(result, tenant, directory))
        return result

    result = await asyncio.to_thread(judged)
    return Verdict(bool(result.valid), list(result.errors), list(result.warnings))


def store_for(settings: Settings) -> ObjectStore | None:
    """The object store the model checks read, or None when no S3 endpoint is configured."""
    return ObjectStore.from_settings(settings) if settings.s3_endpoint else None
