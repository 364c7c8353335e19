"""The checks of a sweep (``type: "sweep"``), and the one entry point for any submission.

A sweep is checked as deeply as a job: its search (``SweepConfig``) and its sizes against the
caps, its base job with every check a job gets, and the base with each end of each parameter's
range (each choice) set, so a trial the search would make is refused now rather than as it
runs. The validator checks every trial again when the controller submits it.
"""

from __future__ import annotations

from typing import Any

from pydantic import ValidationError

from sparktrainer.contracts import caps
from sparktrainer.contracts.access import Access
from sparktrainer.contracts.jobspec import FRAMEWORKS_RUN, SWEEP_TYPE, JobRequest
from sparktrainer.contracts.refs import ModelDirectory
from sparktrainer.contracts.sweeps import SWEEP_ID_CHARS, SweepConfig, with_params
from sparktrainer.settings import Limits
from sparktrainer.storage.s3 import ObjectStore
from sparktrainer.validation import messages
from sparktrainer.validation.checks import ValidationResult, validate_job


def validate_submission(
    body: Any,
    store: ObjectStore | None,
    limits: Limits | None = None,
    directory: ModelDirectory | None = None,
    access: Access | None = None,
) -> ValidationResult:
    """Every check of a submission: a sweep's, or a job's (``directory``, ``access``: see
    validate_job)."""
    limits = limits or Limits()
    if isinstance(body, dict) and body.get("type") == SWEEP_TYPE:
        return validate_sweep(body, store, limits, directory, access)
    return validate_job(body, store, limits, directory, access)


def validate_sweep(
    body: dict[str, Any],
    store: ObjectStore | None,
    limits: Limits,
    directory: ModelDirectory | None = None,
    access: Access | None = None,
) -> ValidationResult:
    """A sweep's checks; the result's ``sweep`` is the normalized search (base filled in)."""
    result = ValidationResult()
    result.errors.extend(caps.check_shape(body, limits))
    if result.errors:
        return result
    try:
        result.request = JobRequest.model_validate(body)
    except ValidationError as e:
        result.errors.extend(messages.from_pydantic(e))
    if body.get("framework") not in FRAMEWORKS_RUN:
        result.errors.append(messages.bad_framework(body.get("framework")))
    if isinstance(body.get("job_id"), str) and len(body["job_id"]) > SWEEP_ID_CHARS:
        result.errors.append(f"a sweep's job_id has at most {SWEEP_ID_CHARS} characters")
    try:
        config = SweepConfig.model_validate(body.get("config"))
    except ValidationError as e:
        result.errors.extend(messages.from_pydantic(e, prefix="config"))
        return result
    result.errors.extend(caps.check_sweep(config, limits))
    if result.errors or result.request is None:
        return result
    config = config.model_copy(update={"base": _base(config.base, result.request)})
    _check_trials(config, store, limits, result, directory, access)
    result.sweep, result.trials = config, config.trials(limits.sweep_grid_points)
    if result.trials < config.max_trials:
        result.warnings.append(
            f"the grid has {result.trials} points: the sweep runs {result.trials} trials, "
            f"not max_trials {config.max_trials}"
        )
    return result


def _base(base: dict[str, Any], sweep: JobRequest) -> dict[str, Any]:
    """The base job as trials run it: the sweep's framework, priority and resources by default."""
    defaults = {
        "framework": sweep.framework,
        "priority": sweep.priority,
        "resources": sweep.resources.model_dump(),
    }
    return {**defaults, **base}


def _check_trials(
    config: SweepConfig,
    store: ObjectStore | None,
    limits: Limits,
    result: ValidationResult,
    directory: ModelDirectory | None = None,
    access: Access | None = None,
) -> None:
    """The base job, then the base with each end of each parameter set (no store lookups)."""
    base = validate_job(config.base, store, limits, directory, access)
    result.errors.extend(f"config.base: {e}" for e in base.errors)
    result.warnings.extend(f"config.base: {w}" for w in base.warnings)
    result.resource_class = base.resource_class
    if base.errors:
        return
    concrete = config.base  # the corners are checked against the parent the base resolved to
    if base.parent_ref is not None and isinstance(config.base.get("config"), dict):
        parent = {**config.base["config"], "model_id": base.parent_ref.model_id}
        concrete = {**config.base, "config": parent}
    for name, param in config.space.items():
        for value in param.corners()[: limits.sweep_choices]:
            trial = validate_job(with_params(concrete, {name: value}), None, limits, access=access)
            for error in trial.errors:
                message = f"config.space.{name} = {messages.quoted(value)}: {error}"
                if message not in result.errors:
                    result.errors.append(message)
