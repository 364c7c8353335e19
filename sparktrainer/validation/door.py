"""The public door: turn any record on a submission door into exactly one verdict.

Forgiving on purpose: binary-mode CloudEvents, structured-mode CloudEvents and a bare JSON job
typed into a Kafka UI (no key, no headers) are all submissions. Anything else is answered
with a rejected event that says why and where the record came from.
"""

from __future__ import annotations

import re
from typing import Any

from sparktrainer.contracts.access import Access
from sparktrainer.contracts.envelope import EnvelopeError, OutRecord, encode, unwrap
from sparktrainer.contracts.events import JobRejected, JobValidated
from sparktrainer.contracts.fitting import capped
from sparktrainer.contracts.records import (
    Received,
    content_fingerprint,
    decode_received,
    derived_id,
    job_id_for,
    key_job_id,
)
from sparktrainer.contracts.refs import ModelDirectory
from sparktrainer.contracts.schedule_events import SweepValidated, TrialRejected, TrialSubmission
from sparktrainer.contracts.sweeps import trial_id
from sparktrainer.contracts.tenants import DEFAULT_TENANT, Tenants
from sparktrainer.contracts.topics import SWEEP_TRIALS
from sparktrainer.settings import Limits
from sparktrainer.storage.outcomes import claim, claim_holder
from sparktrainer.storage.s3 import ObjectStore
from sparktrainer.validation import messages
from sparktrainer.validation.checks import ValidationResult
from sparktrainer.validation.sweeps import validate_submission
from sparktrainer.validation.tenancy import (
    door_tenant,
    name_problems,
    priority_problems,
    tenant_problems,
    trial_tenant_problems,
)

SOURCE = "sparktrainer/validator"
_EXCERPT_BYTES = 200
_PRINTABLE = re.compile(r"[^\x20-\x7e]")


Verdict = JobValidated | JobRejected | SweepValidated | TrialRejected


def decide(
    rec: Received,
    store: ObjectStore | None,
    limits: Limits,
    directory: ModelDirectory | None = None,
    access: Access | None = None,
    tenants: Tenants | None = None,
) -> Verdict:
    """The verdict on one record: validated with its normalized config, or rejected.

    The tenant is the one whose door ``rec.topic`` is (``tenants``: the tenants file; None: the
    default tenant alone), stamped on the verdict. With a store, a valid job or sweep also
    claims its id: a different one under an id already taken is rejected, under an id of its
    own (answering under the taken id would end the other job).
    """
    size = len(rec.value or b"")
    if size > limits.submission_bytes:
        return _unread(
            rec,
            store,
            [
                f"Submission is {size} bytes, above the limit of {limits.submission_bytes} bytes: "
                "send data by reference (an s3:// URI in config.data.source), not inline"
            ],
        )
    if rec.topic == SWEEP_TRIALS:
        return _trial(rec, store, limits, directory, access, tenants or Tenants())
    tenant, problem = door_tenant(rec.topic, tenants or Tenants())
    if tenant is None:
        return _unread(rec, store, [problem or "no tenant"])
    try:
        _, body = unwrap(rec.value, rec.headers)
    except EnvelopeError as e:
        return _unread(rec, store, [f"Submission could not be read: {e}"], tenant.name)
    job_id, warnings = job_id_for(rec, body)
    result = validate_submission(body, store, limits, directory, access)
    result.warnings[:0] = warnings
    result.errors.extend(tenant_problems(body, result, tenant, directory))
    return _verdict(rec, store, job_id, result, tenant.name)


def _trial(
    rec: Received,
    store: ObjectStore | None,
    limits: Limits,
    directory: ModelDirectory | None,
    access: Access | None,
    tenants: Tenants,
) -> Verdict:
    """A trial on the sweep controller's own topic: its sweep, number and tenant are the
    controller's word (the topic's only writer); its job is checked as any job is. A trial
    whose id another job holds is a TrialRejected for its sweep, never an answer under that id.
    """
    try:
        sub = decode_received(rec, TrialSubmission)
    except EnvelopeError as e:
        return rejected(rec, [f"Not a trial submission: {e}"])
    job_id = trial_id(sub.sweep_id, sub.trial)
    lineage = {"job_id": job_id, "sweep_id": sub.sweep_id, "trial": sub.trial}
    body = {**sub.job.model_dump(mode="json"), **lineage}
    result = validate_submission(body, store, limits, directory, access)
    result.errors.extend(trial_tenant_problems(sub, tenants, store))
    tenant = tenants.get(sub.tenant)
    if tenant is not None:
        result.errors.extend(priority_problems(result, tenant))
        result.errors.extend(name_problems(result, tenant.name, directory))
    verdict = _verdict(rec, store, job_id, result, sub.tenant)
    if isinstance(verdict, JobRejected) and verdict.job_id != job_id:
        return TrialRejected(
            sweep_id=sub.sweep_id, trial=sub.trial, job_id=job_id, errors=verdict.errors
        )
    return verdict


def _verdict(
    rec: Received, store: ObjectStore | None, job_id: str, result: ValidationResult, tenant: str
) -> Verdict:
    """Validated (a job or a sweep, its id claimed for ``tenant``) or rejected."""
    if not result.valid:
        if store is not None and claim_holder(store, job_id) is not None:
            # The id is a job's already: its verdict stands; this one answers under its own id.
            errors = [messages.id_taken(job_id), *result.errors]
            return rejected(rec, errors, result, job_id=derived_id(rec), tenant=tenant)
        return rejected(rec, result.errors, result, job_id=job_id, tenant=tenant)
    verdict: JobValidated | SweepValidated
    if result.sweep is not None:
        verdict, kind = _sweep(rec, job_id, result, tenant), "sweep"
    else:
        verdict, kind = _validated(rec, job_id, result, tenant), "job"
    if store is not None and claim(store, job_id, content_fingerprint(verdict), tenant, kind):
        errors = [messages.id_taken(job_id)]
        return rejected(rec, errors, result, job_id=derived_id(rec), tenant=tenant)
    return verdict


def _sweep(rec: Received, job_id: str, result: ValidationResult, tenant: str) -> SweepValidated:
    assert result.request is not None and result.sweep is not None
    req = result.request
    return SweepValidated(
        sweep_id=job_id,
        name=req.name or f"sweep-{job_id[:12]}",
        framework=req.framework,  # type: ignore[arg-type]  # checked against FRAMEWORKS_RUN
        config=result.sweep,
        trials=result.trials,
        **_told(rec, result, tenant),
    )


def _told(rec: Received, result: ValidationResult, tenant: str) -> dict[str, Any]:
    """What a validated job and a validated sweep both carry over from the request."""
    assert result.request is not None
    req = result.request
    return {
        "priority": req.priority,
        "resources": req.resources,
        "description": req.description,
        "tags": req.tags,
        "submitted_by": req.submitted_by,
        "warnings": result.warnings,
        "source": rec.source(),
        "tenant": tenant,
    }


def _validated(rec: Received, job_id: str, result: ValidationResult, tenant: str) -> JobValidated:
    assert result.request is not None and result.config is not None and result.kind is not None
    assert result.resource_class is not None
    req, cfg = result.request, result.config
    return JobValidated(
        job_id=job_id,
        name=req.name or f"{req.framework}-{req.type}-{job_id[:12]}",
        type=req.type,  # type: ignore[arg-type]  # checked against JOB_TYPES
        framework=result.kind.framework,
        config_kind=result.kind.name,
        config=cfg,
        license=req.license,
        domain=req.domain,
        resource_class=result.resource_class,
        sweep_id=req.sweep_id,
        trial=req.trial,
        register_as=req.register_as,
        parent_ref=result.parent_ref,
        **_told(rec, result, tenant),
    )


def _unread(
    rec: Received, store: ObjectStore | None, errors: list[str], tenant: str = DEFAULT_TENANT
) -> JobRejected:
    """The answer to a record that gives no job to check: under its key's id, unless another
    job holds that id; then under an id of its own, as any newcomer to a taken id (an answer
    under the taken id would read as that job's end to whoever follows it)."""
    key = key_job_id(rec)
    if store is not None and key is not None and claim_holder(store, key) is not None:
        return rejected(
            rec, [messages.id_taken(key), *errors], job_id=derived_id(rec), tenant=tenant
        )
    return rejected(rec, errors, tenant=tenant)


def rejected(
    rec: Received,
    errors: list[str],
    result: ValidationResult | None = None,
    *,
    job_id: str | None = None,
    tenant: str = DEFAULT_TENANT,
) -> JobRejected:
    """The rejected answer to ``rec``: under its job id (the key's when the body is unreadable)."""
    raw = rec.value or b""
    name = result.request.name if result and result.request else None
    return JobRejected(
        job_id=job_id or key_job_id(rec) or derived_id(rec),
        errors=capped(errors),
        warnings=capped(result.warnings) if result else [],
        name=name,
        source=rec.source(),
        raw_excerpt=_PRINTABLE.sub("?", raw[:_EXCERPT_BYTES].decode("utf-8", errors="replace")),
        tenant=tenant,
    )


def answer(
    rec: Received,
    store: ObjectStore | None,
    limits: Limits,
    directory: ModelDirectory | None = None,
    access: Access | None = None,
    tenants: Tenants | None = None,
) -> list[OutRecord]:
    """The one output record for an input record (within the message limit)."""
    verdict = decide(rec, store, limits, directory, access, tenants)
    return [encode(verdict, SOURCE, max_bytes=limits.message_bytes)]
