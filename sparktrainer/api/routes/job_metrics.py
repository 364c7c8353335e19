"""GET /api/jobs/{id}/metrics: a job's metric series, whole or what changed since a cursor."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Query, Request
from fastapi.responses import JSONResponse

from sparktrainer.api.state import existing, state_of
from sparktrainer.contracts.series import RECORDED_SERIES
from sparktrainer.registry.jobs import get_job
from sparktrainer.registry.metric_series import job_series

router = APIRouter(prefix="/api/jobs", tags=["jobs"])
MAX_SERIES_NAMES = len(RECORDED_SERIES) * 2


@router.get("/{job_id}/metrics")
def job_metrics(
    request: Request,
    job_id: str,
    since: Annotated[int, Query(ge=0, le=2**62, description="cursor of an earlier answer")] = 0,
    series: Annotated[list[str] | None, Query(max_length=MAX_SERIES_NAMES)] = None,
) -> JSONResponse:
    """Series as ``{name: {steps, epochs, values}}``; poll with ``since`` = the last ``cursor``.

    With ``since``, only points added or changed after it come back, unless ``reset`` is true
    (a resumed attempt or a thinning removed points): then every point does, to replace the old.
    """
    registry = state_of(request).registry
    found = registry.read(job_series, job_id, since=since, names=series)
    if found is None:  # a job the read model knows, with no point yet
        job_id = existing(registry.read(get_job, job_id), "job", job_id)["job_id"]
        found = {"job_id": job_id, "task": None, "attempt": 0, "cursor": 0, "reset": False,
                 "series": {}}  # fmt: skip
    return JSONResponse(found)
