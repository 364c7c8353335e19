"""Endpoints under /api/models: list, show, lineage."""

from __future__ import annotations

from fastapi import APIRouter, Request
from fastapi.responses import JSONResponse

from sparktrainer.api.routes.paging import Limit, Offset
from sparktrainer.api.state import existing, state_of
from sparktrainer.registry.models import get_model, lineage, list_models

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
    page = state_of(request).registry.read(
        list_models,
        framework=framework,
        base_model_id=base_model_id,
        tag=tag,
        limit=limit,
        offset=offset,
    )
    return JSONResponse(page.as_dict("models"))


@router.get("/{model_id}")
def model(request: Request, model_id: str) -> JSONResponse:
    """One model: its files (key, size, sha256), metrics, metadata and lineage ids."""
    found = existing(state_of(request).registry.read(get_model, model_id), "model", model_id)
    for artifact in found["artifacts"]:
        artifact["key"] = found["storage_prefix"] + artifact["path"]
    return JSONResponse(found)


@router.get("/{model_id}/lineage")
def model_lineage(request: Request, model_id: str) -> JSONResponse:
    """A model's ancestors (nearest first) and its children."""
    return JSONResponse(
        existing(state_of(request).registry.read(lineage, model_id), "model", model_id)
    )
