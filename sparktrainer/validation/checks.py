"""The validation checks of the guide, and the ones beyond it, as plain functions.

``validate_job(body, store, limits)`` returns every error at once. It never raises on any
input and never imports torch: the validator and the API's /validate both call it, and the
trainer calls it again on every job it takes. Which config class, parent rule and estimate
apply comes from the job-kind registry (``contracts/kinds.py``).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from pydantic import ValidationError

from sparktrainer.contracts import caps, kinds
from sparktrainer.contracts.access import Access
from sparktrainer.contracts.estimates import ResourceEstimate
from sparktrainer.contracts.events import ParentRef
from sparktrainer.contracts.hf_modules import check_lora_targets, model_type_for
from sparktrainer.contracts.jobspec import (
    FRAMEWORKS_KNOWN,
    FRAMEWORKS_RUN,
    JOB_TYPES,
    SWEEP_TYPE,
    HuggingFaceConfig,
    JobRequest,
    TrainingOptions,
)
from sparktrainer.contracts.kinds import Architecture, JobKind, Parent
from sparktrainer.contracts.refs import ModelDirectory
from sparktrainer.contracts.scheduling import no_class_message, route
from sparktrainer.contracts.sweeps import SweepConfig
from sparktrainer.settings import Limits
from sparktrainer.storage.s3 import ObjectStore
from sparktrainer.validation import messages
from sparktrainer.validation.registered import check_parent, local_architecture, resolve_parent


@dataclass
class ValidationResult:
    """The verdict on one job: errors (empty when valid), warnings, its kind and typed config."""

    errors: list[str] = field(default_factory=list)
    warnings: list[str] = field(default_factory=list)
    request: JobRequest | None = None
    kind: JobKind | None = None
    config: TrainingOptions | None = None
    estimate: ResourceEstimate | None = None
    resource_class: str | None = None  # where it waits (contracts/scheduling.py)
    sweep: SweepConfig | None = None  # a sweep's search, normalized (validation/sweeps.py)
    trials: int = 0  # how many trials that sweep runs
    parent_ref: ParentRef | None = None

    @property
    def valid(self) -> bool:
        """True when there is no error."""
        parsed = self.config is not None or self.sweep is not None
        return not self.errors and parsed and self.request is not None


def validate_job(
    body: Any,
    store: ObjectStore | None,
    limits: Limits | None = None,
    directory: ModelDirectory | None = None,
    access: Access | None = None,
) -> ValidationResult:
    """Run every check on a job body (a dict as the guide writes it); report all errors.

    ``directory`` resolves a fine-tune's registered parent (NAME:VERSION, NAME@ALIAS, and
    whether it was deleted); without one only plain model ids can be fine-tuned. ``access`` is
    what the deployment lets jobs read (default: its own bucket, no local models).
    """
    limits = limits or Limits()
    result = ValidationResult()
    if not isinstance(body, dict):
        result.errors.append(messages.not_an_object(body))
        return result
    result.errors.extend(caps.check_shape(body, limits))
    if result.errors:
        return result  # a pathological document is not parsed any further
    try:
        result.request = JobRequest.model_validate(body)
    except ValidationError as e:
        result.errors.extend(messages.from_pydantic(e))
    if result.request is not None:
        _check_route(result.request, limits, result)
    result.errors.extend(_request_caps(result.request, limits))
    framework, job_type = body.get("framework"), body.get("type")
    _check_framework(framework, result)
    _check_type(job_type, result)
    config = body.get("config", {})
    kind = select_kind(framework, job_type, config, result) if isinstance(config, dict) else None
    if kind is None:
        return result
    try:
        result.config = kind.config.model_validate(config)
    except ValidationError as e:
        result.errors.extend(messages.from_pydantic(e, prefix="config"))
        return result
    result.kind = kind
    result.errors.extend(access_problems(result.config, access or Access()))
    if not result.errors:
        _check_kind(kind, result.config, store, limits, result, directory)
    return result


def _request_caps(request: JobRequest | None, limits: Limits) -> list[str]:
    """What the job asks for outside its config: the length of the name it registers as."""
    name = request.register_as if request else None
    over = name and caps.over("register_as (characters)", len(name), "model_name_chars", limits)
    return [over] if over else []


def access_problems(config: TrainingOptions, access: Access) -> list[str]:
    """The data bucket and local model folder a job names, against what it may read."""
    problems = [access.bucket_problem(config.data.source)]
    if isinstance(config, HuggingFaceConfig) and config.model_source == "local":
        problems.append(access.local_path_problem(config.model_path or ""))
    return [p for p in problems if p]


def _check_kind(
    kind: JobKind,
    config: TrainingOptions,
    store: ObjectStore | None,
    limits: Limits,
    result: ValidationResult,
    directory: ModelDirectory | None = None,
) -> None:
    """Caps, the registered parent, the estimate and the kind's own checks."""
    result.errors.extend(caps.check_asks(kind, config, limits))
    if result.errors:
        return  # a job that asks beyond a cap is not estimated (nor its parent fetched)
    resolved = resolve_parent(kind, config, directory)
    result.errors.extend(resolved.errors)
    result.warnings.extend(resolved.warnings)
    if resolved.errors:
        return
    config = result.config = resolved.config
    result.parent_ref = resolved.parent_ref
    parent: Parent | None = None
    if store is not None:
        parent, problems = check_parent(kind, config, store)
        result.errors.extend(problems)
        if problems:
            return
    architecture = _architecture(config, parent)
    result.estimate = kind.estimate(config, architecture)
    if result.estimate is not None:
        result.errors.extend(caps.check_estimate(result.estimate, config, limits))
    elif kind.parent is None or store is not None:
        result.warnings.append(messages.estimate_later(kind.name))
    if isinstance(config, HuggingFaceConfig) and config.lora.enabled:
        model_type = model_type_for(config, architecture)
        errors, warnings = check_lora_targets(model_type, None, config.lora.target_modules)
        result.errors.extend(errors)
        result.warnings.extend(warnings)
    result.warnings.extend(_warnings(config))


def _check_route(req: JobRequest, limits: Limits, result: ValidationResult) -> None:
    """Resource caps, the resource class the job waits in, and its sweep lineage."""
    errors = caps.check_request(req, limits)
    result.errors.extend(errors)
    resource_class = route(req.resources)
    if resource_class is None:
        result.errors.append(no_class_message(req.resources))
    elif not errors:
        result.resource_class = resource_class.name
    if (req.trial is None) != (req.sweep_id is None):
        result.errors.append("sweep_id and trial go together: a sweep's trial sets both")


def _architecture(config: TrainingOptions, parent: Parent | None) -> Architecture | None:
    """What the estimate and LoRA checks can know of the model before it loads."""
    if parent is not None:
        return parent.architecture
    if isinstance(config, HuggingFaceConfig) and config.model_source == "local":
        return local_architecture(config.model_path or "")
    return None


def select_kind(
    framework: Any, job_type: Any, config: dict[str, Any], result: ValidationResult
) -> JobKind | None:
    """The job's kind: the first selecting field of its framework that the config sets."""
    fields = kinds.SELECTING_FIELDS.get(framework) if isinstance(framework, str) else None
    if fields is None:
        return None  # the framework itself is reported
    for name in fields:
        if name not in config:
            continue
        value, options = config[name], kinds.choices(framework, name)
        if isinstance(value, str) and value in options:
            return options[value]
        result.errors.append(messages.bad_selector(framework, name, value, tuple(options)))
        return None
    default = kinds.DEFAULT_SELECTION.get(framework)
    if default is not None:
        return kinds.choices(framework, default[0])[default[1]]
    result.errors.append(
        messages.missing_architecture(job_type, tuple(kinds.choices(framework, "architecture")))
    )
    return None


def _check_framework(framework: Any, result: ValidationResult) -> None:
    if framework is None:
        return  # reported as a missing field by the request model
    if framework not in FRAMEWORKS_KNOWN:
        result.errors.append(messages.bad_framework(framework))
    elif framework not in FRAMEWORKS_RUN:
        result.errors.append(messages.framework_not_run(framework))


def _check_type(job_type: Any, result: ValidationResult) -> None:
    if job_type == SWEEP_TYPE:  # validation/sweeps.py checks sweeps; here it is nested in one
        result.errors.append(
            "type 'sweep' cannot run here: a sweep's base is a train or finetune job"
        )
    elif job_type is not None and job_type not in JOB_TYPES:
        result.errors.append(messages.bad_job_type(job_type))


def _warnings(config: TrainingOptions) -> list[str]:
    warnings = []
    if getattr(config, "pretrained", False):
        warnings.append(
            "pretrained weights are downloaded by the trainer at start; where it cannot reach "
            "the internet the job fails early: set pretrained false or place the weights file "
            "in $TORCH_HOME/hub/checkpoints"
        )
    if config.learning_rate > 0.1:
        warnings.append("learning_rate above 0.1 is unusually high and may diverge")
    return warnings
