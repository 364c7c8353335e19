"""GET /api/health: liveness, and how far the in-process projector has got."""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter, Request

from sparktrainer.api.state import state_of
from sparktrainer.registry.owners import foreign_count

router = APIRouter(tags=["health"])


@router.get("/api/health")
def health(request: Request) -> dict[str, Any]:
    """Always 200 while the process serves; ``projector.ready`` once it follows the log; how
    many registrations and changes by a tenant that does not own their name or model it skipped."""
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
        # records the ownership rule kept out of the read model (registry/owners.py)
        "foreign_records": state.registry.read(foreign_count),
    }
