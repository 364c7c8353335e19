"""GET /api/jobs/{id}/logs: one attempt's output (stdout, stderr, logging), from S3.

The latest attempt unless ``?attempt=N``; ``?offset=B`` gives the bytes from B on (poll with
the last ``X-Log-Size`` to read only what is new). Headers: ``X-Attempt`` (the one served),
``X-Attempts`` (every attempt with a log), ``X-Log-Size`` (its size in bytes). The bearer
token is needed even where reads are open: a log may quote the job's data.
"""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Depends, Query, Request
from fastapi.responses import Response

from sparktrainer.api.state import ApiError, require_token, state_of
from sparktrainer.contracts.jobspec import check_safe_id
from sparktrainer.errors import ObjectNotFound
from sparktrainer.registry.jobs import get_job
from sparktrainer.storage.job_logs import (
    chosen_attempt,
    logged_attempts,
    no_log_reason,
    read_job_log,
)

router = APIRouter(prefix="/api/jobs", tags=["jobs"], dependencies=[Depends(require_token)])


@router.get("/{job_id}/logs")
def job_logs(
    request: Request,
    job_id: str,
    attempt: Annotated[int | None, Query(ge=1, le=10**6)] = None,
    offset: Annotated[int, Query(ge=0, le=2**40)] = 0,
) -> Response:
    """The attempt's log as text/plain (404 when it has none yet)."""
    state = state_of(request)
    known = state.registry.read(get_job, job_id)  # a unique prefix names the job too
    job_id = known["job_id"] if known else job_id
    try:
        check_safe_id(job_id)
    except ValueError as e:
        raise ApiError(422, str(e)) from e
    store = state.object_store()
    if store is None:
        raise ApiError(503, "No S3 endpoint configured (SPARKTRAINER_S3_ENDPOINT)")
    attempts = logged_attempts(store, job_id)
    chosen = chosen_attempt(attempts, attempt)
    if chosen is None:
        raise ApiError(404, no_log_reason(job_id, attempts, attempt))
    try:
        body, size = read_job_log(store, job_id, chosen, offset)
    except ObjectNotFound as e:
        raise ApiError(404, f"The log of job '{job_id}' attempt {chosen} is gone") from e
    headers = {"X-Attempt": str(chosen), "X-Attempts": ",".join(map(str, attempts)),
               "X-Log-Size": str(size)}  # fmt: skip
    return Response(body, media_type="text/plain; charset=utf-8", headers=headers)
