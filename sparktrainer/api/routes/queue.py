"""GET /api/queue: waiting jobs per resource class in pick order, running jobs, live trainers."""

from __future__ import annotations

from fastapi import APIRouter, Request
from fastapi.responses import JSONResponse

from sparktrainer.api.state import state_of
from sparktrainer.contracts.fairshare import shares_of
from sparktrainer.registry.queue import queue_view

router = APIRouter(prefix="/api/queue", tags=["queue"])


@router.get("")
def queue(request: Request) -> JSONResponse:
    """Per class: waiting jobs with their position, its trainers, why it waits if none serves it."""
    state = state_of(request)
    settings = state.settings
    view = state.registry.read(
        queue_view,
        settings.schedule_aging_s,
        priorities=settings.schedule_priorities,
        shares=shares_of(state.credentials.tenants),  # the file as read at start
        fair_window_s=settings.schedule_fair_window_s,
    )
    return JSONResponse(view)
