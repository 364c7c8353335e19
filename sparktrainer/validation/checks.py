"""The validation checks of the guide, and the ones beyond it, as plain functions.

``validate_job(body, store, limits)`` returns every error at once. It never raises on any
input and never imports torch: the validator and the API's /validate both call it.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from pydantic import BaseModel, ValidationError

from sparktrainer.contracts.jobspec import (
    FRAMEWORKS_KNOWN,
    FRAMEWORKS_RUN,
    JOB_TYPES,
    PYTORCH_ARCHITECTURES,
    PYTORCH_SOURCES,
    HuggingFaceConfig,
    JobRequest,
    TrainingOptions,
)
from sparktrainer.settings import Limits
from sparktrainer.storage.s3 import ObjectStore
from sparktrainer.validation import messages
from sparktrainer.validation.caps import check_caps
from sparktrainer.validation.registered import check_registered_model


@dataclass
class ValidationResult:
    """The verdict on one job: errors (empty when valid), warnings and the typed config."""

    errors: list[str] = field(default_factory=list)
    warnings: list[str] = field(default_factory=list)
    request: JobRequest | None = None
    config: TrainingOptions | None = None

    @property
    def valid(self) -> bool:
        """True when there is no error."""
        return not self.errors and self.config is not None and self.request is not None


def validate_job(
    body: Any, store: ObjectStore | None, limits: Limits | None = None
) -> ValidationResult:
    """Run every check on a job body (a dict as the guide writes it); report all errors."""
    limits = limits or Limits()
    result = ValidationResult()
    if not isinstance(body, dict):
        result.errors.append(messages.not_an_object(body))
        return result
    try:
        result.request = JobRequest.model_validate(body)
    except ValidationError as e:
        result.errors.extend(messages.from_pydantic(e))
    framework = body.get("framework")
    job_type = body.get("type")
    _check_framework(framework, result)
    _check_type(job_type, result)
    config = body.get("config", {})
    if not isinstance(config, dict):
        return result
    cls = _config_class(framework, job_type, config, result)
    if cls is None:
        return result
    try:
        result.config = cls.model_validate(config)
    except ValidationError as e:
        result.errors.extend(messages.from_pydantic(e, prefix="config"))
        return result
    result.errors.extend(check_caps(result.config, limits))
    if store is not None:
        errors, warnings = check_registered_model(result.config, framework, store)
        result.errors.extend(errors)
        result.warnings.extend(warnings)
    result.warnings.extend(_warnings(result.config))
    return result


def _check_framework(framework: Any, result: ValidationResult) -> None:
    if framework is None:
        return  # reported as a missing field by the request model
    if framework not in FRAMEWORKS_KNOWN:
        result.errors.append(messages.bad_framework(framework))
    elif framework not in FRAMEWORKS_RUN:
        result.errors.append(messages.framework_not_run(framework))


def _check_type(job_type: Any, result: ValidationResult) -> None:
    if job_type is not None and job_type not in JOB_TYPES:
        result.errors.append(messages.bad_job_type(job_type))


def _config_class(
    framework: Any, job_type: Any, config: dict[str, Any], result: ValidationResult
) -> type[TrainingOptions] | None:
    """Pick the typed config for this job: the one architecture/source registry."""
    if framework == "huggingface":
        return HuggingFaceConfig
    if framework != "pytorch":
        return None
    source = config.get("model_source")
    if source is not None:
        if isinstance(source, str) and source in PYTORCH_SOURCES:
            return PYTORCH_SOURCES[source]
        result.errors.append(messages.bad_source(source, tuple(PYTORCH_SOURCES)))
        return None
    arch = config.get("architecture")
    if arch is None:
        result.errors.append(messages.missing_architecture(job_type, tuple(PYTORCH_ARCHITECTURES)))
        return None
    if not isinstance(arch, str) or arch not in PYTORCH_ARCHITECTURES:
        result.errors.append(messages.bad_architecture(arch, tuple(PYTORCH_ARCHITECTURES)))
        return None
    return PYTORCH_ARCHITECTURES[arch]


def _warnings(config: TrainingOptions) -> list[str]:
    warnings = []
    if getattr(config, "pretrained", False):
        warnings.append(
            "pretrained weights are downloaded by the trainer at start; where it cannot reach "
            "the internet the job fails early: set pretrained false or place the weights file "
            "in $TORCH_HOME/hub/checkpoints"
        )
    if isinstance(config, BaseModel) and getattr(config, "learning_rate", 0) > 0.1:
        warnings.append("learning_rate above 0.1 is unusually high and may diverge")
    return warnings
