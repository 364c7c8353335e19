"""GET /metrics: the API's Prometheus metrics, in the text exposition format."""

from __future__ import annotations

from fastapi import APIRouter, Request
from fastapi.responses import Response

from sparktrainer.api.state import state_of
from sparktrainer.telemetry.prometheus import CONTENT_TYPE

router = APIRouter(tags=["metrics"])


@router.get("/metrics", include_in_schema=False)
def prometheus_metrics(request: Request) -> Response:
    """Requests by route and status, their latency, and jobs by state."""
    return Response(state_of(request).metrics.service.exposition(), media_type=CONTENT_TYPE)
