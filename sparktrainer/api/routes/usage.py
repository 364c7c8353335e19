"""GET /api/tenants/{tenant}/usage and GET /api/usage: GPU- and CPU-seconds by day and class.

A tenant's token reads its own usage; the default tenant's (the operator's, or anyone's where no
token is configured) reads every tenant's, and so does any request where reads are open
(``SPARKTRAINER_API_OPEN_READS``: the same answer is open without a token anyway).
"""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Query, Request
from fastapi.responses import JSONResponse

from sparktrainer.api.auth import tenant_of
from sparktrainer.api.state import ApiError, state_of
from sparktrainer.contracts.tenants import DEFAULT_TENANT, check_tenant_name
from sparktrainer.registry.usage import MAX_DAYS, no_usage, since_day, tenant_usage

router = APIRouter(tags=["usage"])
Days = Annotated[int, Query(ge=1, le=MAX_DAYS, description="The last N UTC days, today's too")]


def _sees_all(request: Request) -> bool:
    return tenant_of(request) == DEFAULT_TENANT or state_of(request).settings.api_open_reads


@router.get("/api/tenants/{tenant}/usage")
def usage_of(request: Request, tenant: str, days: Days = 30) -> JSONResponse:
    """One tenant's attempts, jobs, wall-, CPU- and GPU-seconds: totals, per class, per day."""
    try:
        check_tenant_name(tenant)
    except ValueError as e:
        raise ApiError(422, str(e)) from e
    if tenant != tenant_of(request) and not _sees_all(request):
        raise ApiError(
            403,
            f"Your token establishes tenant '{tenant_of(request)}': it reads only its own "
            "usage (the default tenant's token reads every tenant's)",
        )
    state = state_of(request)
    found = state.registry.read(tenant_usage, tenant, days)
    if not found and state.credentials.tenants.get(tenant) is None:
        raise ApiError(404, f"No tenant '{tenant}' is configured or has used a trainer")
    return JSONResponse(found[0] if found else no_usage(tenant, since_day(days)))


@router.get("/api/usage")
def usage(request: Request, days: Days = 30) -> JSONResponse:
    """Every tenant's usage the caller may read (its own, or all for the default tenant)."""
    mine = None if _sees_all(request) else tenant_of(request)
    found = state_of(request).registry.read(tenant_usage, mine, days)
    return JSONResponse({"days": days, "tenants": found})
