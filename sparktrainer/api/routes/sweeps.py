"""Endpoints under /api/sweeps: list, and one sweep with its trials as a table."""

from __future__ import annotations

from fastapi import APIRouter, Request
from fastapi.responses import JSONResponse

from sparktrainer.api.routes.paging import Limit, Offset
from sparktrainer.api.state import existing, state_of
from sparktrainer.registry.sweeps import best_first, get_sweep, list_sweeps

router = APIRouter(prefix="/api/sweeps", tags=["sweeps"])


@router.get("")
def sweeps(request: Request, limit: int = Limit, offset: int = Offset) -> JSONResponse:
    """Sweeps, newest first, with their status and how many trials are planned."""
    page = state_of(request).registry.read(list_sweeps, limit=limit, offset=offset)
    return JSONResponse(page.as_dict("sweeps"))


@router.get("/{sweep_id}")
def sweep(request: Request, sweep_id: str) -> JSONResponse:
    """One sweep: its search, status, result, and every trial with its params and metric."""
    found = existing(state_of(request).registry.read(get_sweep, sweep_id), "sweep", sweep_id)
    found["ranking"] = [tr["trial"] for tr in best_first(found)]
    return JSONResponse(found)
