"""The validator's verdict on a job body, for callers outside Kafka (the API, the CLI).

Same checks as the validator consumer: this calls the validation package, it never copies it.
"""

from __future__ import annotations

import asyncio
import inspect
from dataclasses import dataclass, field
from typing import Any

from sparktrainer.settings import Settings
from sparktrainer.storage.s3 import ObjectStore


@dataclass(frozen=True)
class Verdict:
    """Whether a job would be accepted, with every error and warning."""

    valid: bool
    errors: list[str] = field(default_factory=list)
    warnings: list[str] = field(default_factory=list)

    def as_dict(self) -> dict[str, Any]:
        """The API's answer shape: ``{"valid", "errors", "warnings"}``."""
        return {"valid": self.valid, "errors": self.errors, "warnings": self.warnings}


def _normalize(result: Any) -> Verdict:
    if isinstance(result, tuple):  # validate_request: (errors, warnings, normalized)
        errors, warnings = list(result[0]), list(result[1])
        return Verdict(not errors, errors, warnings)
    errors, warnings = list(result.errors), list(result.warnings)
    return Verdict(bool(result.valid), errors, warnings)


def _check(body: Any, store: ObjectStore | None, settings: Settings) -> Any:
    from sparktrainer import validation

    validate_request = getattr(validation, "validate_request", None)
    if validate_request is not None:
        return validate_request(body, store)
    from sparktrainer.validation.checks import validate_job

    return validate_job(body, store, settings.limits)


async def check(body: Any, store: ObjectStore | None, settings: Settings) -> Verdict:
    """Run the validator's checks on a body (object-store lookups run off the event loop)."""
    result = await asyncio.to_thread(_check, body, store, settings)
    if inspect.isawaitable(result):
        result = await result
    return _normalize(result)


def store_for(settings: Settings) -> ObjectStore | None:
    """The object store the model checks read, or None when no S3 endpoint is configured."""
    return ObjectStore.from_settings(settings) if settings.s3_endpoint else None
