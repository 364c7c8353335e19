"""Endpoints under /api/jobs: submit, validate, list, show, cancel."""

from __future__ import annotations

import uuid
from dataclasses import replace
from typing import Any, Literal

from fastapi import APIRouter, Request
from fastapi.responses import JSONResponse
from pydantic import ValidationError

from sparktrainer.api.auth import tenant_of
from sparktrainer.api.routes.paging import Limit, Offset
from sparktrainer.api.state import (
    SOURCE,
    ApiError,
    existing,
    json_object,
    state_of,
)
from sparktrainer.contracts.envelope import encode
from sparktrainer.contracts.events import TERMINAL_STATUSES, CancelRequested, JobSubmitted
from sparktrainer.contracts.jobspec import check_safe_id
from sparktrainer.contracts.topics import submission_topic
from sparktrainer.contracts.trace import TraceContext, traced
from sparktrainer.registry.directory import ReadModelDirectory
from sparktrainer.registry.job_details import job_details
from sparktrainer.registry.jobs import get_job, list_jobs
from sparktrainer.registry.usage import job_usage
from sparktrainer.telemetry.tracing import span
from sparktrainer.validation.messages import from_pydantic
from sparktrainer.validation.tenancy import lineage_problems
from sparktrainer.verdict import check

JobStatus = Literal[
    "submitted", "validated", "rejected", "running", "completed", "failed", "cancelled"
]


router = APIRouter(prefix="/api/jobs", tags=["jobs"])


@router.post("", status_code=202)
async def submit(request: Request) -> JSONResponse:
    """Publish a job-submitted event on the door of the token's tenant (key = job_id; a uuid4 is
    given when absent)."""
    body = await json_object(request)
    try:
        job = JobSubmitted.model_validate(body)
    except ValidationError as e:
        errors = from_pydantic(e)
        raise ApiError(422, "Not a job: " + "; ".join(errors)[:500], errors) from e
    if lineage := lineage_problems(body):
        raise ApiError(422, lineage[0])
    if job.job_id is None:
        job = job.model_copy(update={"job_id": str(uuid.uuid4())})
    tenant = tenant_of(request)  # the token's: the job goes in by its tenant's door
    record = replace(encode(job, SOURCE), topic=submission_topic(tenant))
    parent = TraceContext.parse(request.headers.get("traceparent")) or TraceContext.new()
    with span("submit job", parent, job_id=job.job_id or "") as trace:
        await state_of(request).publish(traced(record, trace))
    return JSONResponse(
        {"job_id": job.job_id, "status": "submitted", "tenant": tenant,
         "href": f"/api/jobs/{job.job_id}"},
        status_code=202,
    )  # fmt: skip


@router.post("/validate")
async def validate(request: Request) -> dict[str, Any]:
    """The validator's verdict on a job, without submitting it."""
    body = await json_object(request)
    state = state_of(request)
    directory = ReadModelDirectory(state.registry.conn)  # the read model as it stands
    verdict = await check(body, state.object_store(), state.settings, directory, tenant_of(request))
    return verdict.as_dict()


@router.get("")
def jobs(
    request: Request, status: JobStatus | None = None, limit: int = Limit, offset: int = Offset
) -> JSONResponse:
    """Jobs, most recently updated first, optionally of one status."""
    page = state_of(request).registry.read(list_jobs, status=status, limit=limit, offset=offset)
    return JSONResponse(page.as_dict("jobs"))


@router.get("/{job_id}")
def job(request: Request, job_id: str) -> JSONResponse:
    """One job: status, last progress, errors and warnings, its config and checkpoints."""
    registry = state_of(request).registry
    found = existing(registry.read(get_job, job_id), "job", job_id)
    job_id = found["job_id"]
    details = registry.read(job_details, job_id)
    return JSONResponse({**found, **details, "usage": registry.read(job_usage, job_id)})


@router.post("/{job_id}/cancel", status_code=202)
async def cancel(request: Request, job_id: str) -> JSONResponse:
    """Publish a cancel request on jobs.control, stamped with the token's tenant (403 for another
    tenant's job or sweep); the trainer stops at its next step."""
    body = await json_object(request, optional=True)
    reason = body.get("reason", "cancel requested")
    if not isinstance(reason, str) or len(reason) > 1024:
        raise ApiError(422, "'reason' must be a string of at most 1024 characters")
    state = state_of(request)
    found = existing(state.registry.read(get_job, job_id), "job", job_id)
    job_id = found["job_id"]  # the whole id, where a prefix was given
    asker = tenant_of(request)
    if found.get("tenant") not in (None, asker):
        raise ApiError(
            403,
            f"Job '{job_id}' belongs to tenant '{found['tenant']}'; this token is tenant "
            f"'{asker}''s: only a job's own tenant may cancel it",
        )
    if found["status"] in TERMINAL_STATUSES:
        raise ApiError(409, f"Job '{job_id}' has already ended ({found['status']})")
    try:
        check_safe_id(job_id)
    except ValueError as e:
        raise ApiError(422, str(e)) from e
    event = CancelRequested(job_id=job_id, reason=reason, requested_by=SOURCE, tenant=asker)
    await state.publish(encode(event, SOURCE))
    return JSONResponse({"job_id": job_id, "cancel_requested": True}, status_code=202)
