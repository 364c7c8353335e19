"""Endpoints under /api/models: search, show, lineage, archive, delete.

Everywhere a model is named, ``{ref}`` is its id, ``NAME:VERSION`` or ``NAME@ALIAS``. Archive
and delete are events on models.changes (202), stamped with the token's tenant: the model's
owner's only (403 otherwise). The read model shows them once folded. Reads are open to every
tenant; each model row names its ``tenant``.
"""

from __future__ import annotations

from typing import Literal

from fastapi import APIRouter, Query, Request
from fastapi.responses import JSONResponse

from sparktrainer.api.routes.paging import Limit, Offset
from sparktrainer.api.state import (
    ApiError,
    change_request,
    existing,
    model_of,
    publish_change,
    state_of,
)
from sparktrainer.registry import changes
from sparktrainer.registry.models import lineage, list_models
from sparktrainer.registry.search import MetricBound, ModelQuery, SearchError, StatusFilter

router = APIRouter(prefix="/api/models", tags=["models"])
Metric = Query([], description="e.g. val_accuracy>=0.9 (repeatable)")
Sort = Query("created_at", description="created_at, version, name or a metric")


@router.get("")
def models(
    request: Request,
    name: str | None = None,
    alias: str | None = None,
    tag: str | None = None,
    framework: str | None = None,
    task: str | None = None,
    base_model_id: str | None = None,
    status: StatusFilter = "live",
    created_after: str | None = None,
    created_before: str | None = None,
    metric: list[str] = Metric,
    sort: str = Sort,
    order: Literal["asc", "desc"] = "desc",
    limit: int = Limit,
    offset: int = Offset,
) -> JSONResponse:
    """Registered models (live ones unless ``status`` says otherwise), newest first."""
    try:
        query = ModelQuery(
            framework=framework, base_model_id=base_model_id, tag=tag, name=name, alias=alias,
            task=task, status=status, created_after=created_after, created_before=created_before,
            metrics=tuple(MetricBound.parse(m) for m in metric), sort=sort,
            descending=order == "desc", limit=limit, offset=offset,
        )  # fmt: skip
        page = state_of(request).registry.read(list_models, query)
    except SearchError as e:
        raise ApiError(422, str(e)) from e
    return JSONResponse(page.as_dict("models"))


@router.get("/{ref}")
def model(request: Request, ref: str) -> JSONResponse:
    """One model: files (key, size, sha256), metrics, metadata, names, aliases, retirement."""
    found = model_of(request, ref)
    for artifact in found["artifacts"]:
        artifact["key"] = found["storage_prefix"] + artifact["path"]
    return JSONResponse(found)


@router.get("/{ref}/lineage")
def model_lineage(request: Request, ref: str) -> JSONResponse:
    """A model's ancestors (nearest first) and its children."""
    model_id = model_of(request, ref)["model_id"]
    return JSONResponse(existing(state_of(request).registry.read(lineage, model_id), "model", ref))


@router.post("/{ref}/archive", status_code=202)
async def archive(request: Request, ref: str) -> JSONResponse:
    """Publish model.archived: the model leaves default lists, stays usable as a parent."""
    asker, reason = await change_request(request)
    event = await publish_change(request, changes.archived, ref, asker, reason)
    return JSONResponse({"model_id": event.model_id, "archive_requested": True}, 202)


@router.delete("/{ref}", status_code=202)
async def delete(request: Request, ref: str) -> JSONResponse:
    """Publish model.deleted: no more fine-tunes or downloads; files go after the grace period."""
    asker, reason = await change_request(request)
    event = await publish_change(request, changes.deleted, ref, asker, reason)
    grace_s = state_of(request).settings.model_delete_grace_s
    return JSONResponse(
        {"model_id": event.model_id, "delete_requested": True, "files_removed_after_s": grace_s},
        202,
    )
