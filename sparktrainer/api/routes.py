"""The API's endpoints: jobs (submit, validate, status, cancel) and models (list, show, lineage)."""

from __future__ import annotations

import uuid
from typing import Any, Literal

from fastapi import APIRouter, Depends, Query, Request
from fastapi.responses import JSONResponse
from pydantic import ValidationError

from sparktrainer.api.app import SOURCE, ApiError, ApiState, json_object, require_token
from sparktrainer.contracts.envelope import encode
from sparktrainer.contracts.events import TERMINAL_STATUSES, CancelRequested, JobSubmitted
from sparktrainer.contracts.jobspec import check_safe_id
from sparktrainer.registry.store import MAX_PAGE
from sparktrainer.verdict import check

JobStatus = Literal[
    "submitted", "validated", "rejected", "running", "completed", "failed", "cancelled"
]
Limit = Query(50, ge=1, le=MAX_PAGE, description="Page size")
Offset = Query(0, ge=0, description="Items to skip")


# Reads answer with JSONResponse directly: the rows are plain JSON already, and FastAPI's
# generic encoder costs more than the query on a page of 1,000 models.


def _state(request: Request) -> ApiState:
    return request.app.state.sparktrainer  # type: ignore[no-any-return]


def _not_found(kind: str, ident: str) -> ApiError:
    return ApiError(
        404,
        f"No {kind} '{ident[:128]}' in the registry (the read model follows the log: "
        "a job submitted a moment ago may not be there yet)",
    )


def health_router() -> APIRouter:
    """GET /api/health: liveness, and how far the in-process projector has got."""
    router = APIRouter(tags=["health"])

    @router.get("/api/health")
    def health(request: Request) -> dict[str, Any]:
        """Always 200 while the process serves; ``projector.ready`` once it follows the log."""
        state = _state(request)
        projector = state.projector
        return {
            "status": "ok",
            "read_model": str(state.db_path),
            "projector": {
                "in_process": state.with_projector,
                "ready": bool(projector and projector.ready.is_set()),
                **(vars(projector.stats) if projector else {}),
            },
        }

    return router


def jobs_router() -> APIRouter:
    """Endpoints under /api/jobs."""
    router = APIRouter(prefix="/api/jobs", tags=["jobs"])

    @router.post("", status_code=202, dependencies=[Depends(require_token)])
    async def submit(request: Request) -> JSONResponse:
        """Publish a job-submitted event (key = job_id; a uuid4 is given when absent)."""
        body = await json_object(request)
        try:
            job = JobSubmitted.model_validate(body)
        except ValidationError as e:
            from sparktrainer.validation.messages import from_pydantic

            errors = from_pydantic(e)
            raise ApiError(422, "Not a job: " + "; ".join(errors)[:500], errors) from e
        if job.job_id is None:
            job = job.model_copy(update={"job_id": str(uuid.uuid4())})
        await _state(request).publish(encode(job, SOURCE))
        return JSONResponse(
            {"job_id": job.job_id, "status": "submitted", "href": f"/api/jobs/{job.job_id}"},
            status_code=202,
        )

    @router.post("/validate")
    async def validate(request: Request) -> dict[str, Any]:
        """The validator's verdict on a job, without submitting it."""
        body = await json_object(request)
        state = _state(request)
        try:
            verdict = await check(body, state.object_store(), state.settings)
        except ImportError as e:
            raise ApiError(503, f"The validator is not installed here: {e}") from e
        return verdict.as_dict()

    @router.get("")
    def jobs(
        request: Request, status: JobStatus | None = None, limit: int = Limit, offset: int = Offset
    ) -> JSONResponse:
        """Jobs, most recently updated first, optionally of one status."""
        page = _state(request).registry.list_jobs(status=status, limit=limit, offset=offset)
        return JSONResponse(page.as_dict("jobs"))

    @router.get("/{job_id}")
    def job(request: Request, job_id: str) -> JSONResponse:
        """One job: status, last progress, errors and warnings."""
        found = _state(request).registry.get_job(job_id)
        if found is None:
            raise _not_found("job", job_id)
        return JSONResponse(found)

    @router.post("/{job_id}/cancel", status_code=202, dependencies=[Depends(require_token)])
    async def cancel(request: Request, job_id: str) -> JSONResponse:
        """Publish a cancel request on jobs.control; the trainer stops at its next step."""
        body = await json_object(request, optional=True)
        reason = body.get("reason", "cancel requested")
        if not isinstance(reason, str) or len(reason) > 1024:
            raise ApiError(422, "'reason' must be a string of at most 1024 characters")
        state = _state(request)
        found = state.registry.get_job(job_id)
        if found is None:
            raise _not_found("job", job_id)
        if found["status"] in TERMINAL_STATUSES:
            raise ApiError(409, f"Job '{job_id}' has already ended ({found['status']})")
        try:
            check_safe_id(job_id)
        except ValueError as e:
            raise ApiError(422, str(e)) from e
        event = CancelRequested(job_id=job_id, reason=reason, requested_by=SOURCE)
        await state.publish(encode(event, SOURCE))
        return JSONResponse({"job_id": job_id, "cancel_requested": True}, status_code=202)

    return router


def models_router() -> APIRouter:
    """Endpoints under /api/models."""
    router = APIRouter(prefix="/api/models", tags=["models"])

    @router.get("")
    def models(
        request: Request,
        framework: str | None = None,
        base_model_id: str | None = None,
        tag: str | None = None,
        limit: int = Limit,
        offset: int = Offset,
    ) -> JSONResponse:
        """Registered models, newest first; filter by framework, parent model or tag."""
        page = _state(request).registry.list_models(
            framework=framework, base_model_id=base_model_id, tag=tag, limit=limit, offset=offset
        )
        return JSONResponse(page.as_dict("models"))

    @router.get("/{model_id}")
    def model(request: Request, model_id: str) -> JSONResponse:
        """One model: its files (key, size, sha256), metrics, metadata and lineage ids."""
        found = _state(request).registry.get_model(model_id)
        if found is None:
            raise _not_found("model", model_id)
        for artifact in found["artifacts"]:
            artifact["key"] = found["storage_prefix"] + artifact["path"]
        return JSONResponse(found)

    @router.get("/{model_id}/lineage")
    def model_lineage(request: Request, model_id: str) -> JSONResponse:
        """A model's ancestors (nearest first) and its children."""
        found = _state(request).registry.lineage(model_id)
        if found is None:
            raise _not_found("model", model_id)
        return JSONResponse(found)

    return router
