"""GET /api/health: liveness, and how far the in-process projector has got."""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter, Request

from sparktrainer.api.state import state_of

router = APIRouter(tags=["health"])


@router.get("/api/health")
def health(request: Request) -> dict[str, Any]:
    """Always 200 while the process serves; ``projector.ready`` once it follows the log."""
    state = state_of(request)
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
