"""Endpoints under /api/registered-models: names, their versions, aliases and alias history.

Setting or removing an alias publishes ``model.alias-set`` / ``model.alias-removed`` on
models.changes (202), stamped with the tenant the token establishes; only the name's owner may
(403 otherwise). The read model shows the move once it has folded it.
"""

from __future__ import annotations

from fastapi import APIRouter, Request
from fastapi.responses import JSONResponse

from sparktrainer.api.routes.paging import Limit, Offset
from sparktrainer.api.state import (
    ApiError,
    change_fields,
    change_request,
    existing,
    json_object,
    publish_change,
    state_of,
)
from sparktrainer.registry import changes
from sparktrainer.registry.names import alias_history, get_name, list_names

router = APIRouter(prefix="/api/registered-models", tags=["registered models"])


@router.get("")
def names(request: Request, limit: int = Limit, offset: int = Offset) -> JSONResponse:
    """Registered names, alphabetically, with their latest version and aliases."""
    page = state_of(request).registry.read(list_names, limit=limit, offset=offset)
    return JSONResponse(page.as_dict("registered_models"))


@router.get("/{name}")
def name(request: Request, name: str) -> JSONResponse:
    """One name: every version (model id, status) and every alias (who set it, when)."""
    return JSONResponse(existing(state_of(request).registry.read(get_name, name), "name", name))


@router.get("/{name}/aliases/{alias}/history")
def alias_moves(request: Request, name: str, alias: str) -> JSONResponse:
    """Every move of one alias, oldest first: who, when, from which version to which."""
    moves = state_of(request).registry.read(alias_history, name, alias)
    if not moves:
        raise ApiError(404, f"'{name[:128]}@{alias[:64]}' was never set")
    return JSONResponse({"name": name, "alias": alias, "history": moves})


@router.put("/{name}/aliases/{alias}", status_code=202)
async def set_alias(request: Request, name: str, alias: str) -> JSONResponse:
    """Point ``name@alias`` at a version: body ``{"version": 3, "actor"?, "reason"?}``."""
    body = await json_object(request)
    asker, reason = change_fields(request, body)
    event = await publish_change(
        request, changes.alias_set, name, alias, body.get("version"), asker, reason
    )
    return JSONResponse({"name": name, "alias": alias, "version": event.version}, 202)


@router.delete("/{name}/aliases/{alias}", status_code=202)
async def remove_alias(request: Request, name: str, alias: str) -> JSONResponse:
    """Remove ``name@alias``."""
    asker, reason = await change_request(request)
    await publish_change(request, changes.alias_removed, name, alias, asker, reason)
    return JSONResponse({"name": name, "alias": alias, "removed": True}, 202)
