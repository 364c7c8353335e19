"""Who a request is: the bearer token establishes its tenant; without one, every route but
/api/health is refused (when any token is configured).

A token is ``SPARKTRAINER_API_TOKEN`` (the default tenant's) or one whose sha256 a tenant lists
in the tenants file (contracts/tenants.py); the tenant it names is put in the request's scope
(``tenant_of``), never read from a body. One ASGI middleware in front of every route (the docs,
/metrics included), so a route added later is protected without saying so. Open besides
/api/health: the pages and what they are drawn from, none of which holds data: the dashboard's
shell (``/`` and its files under ``/static/``), the API's reference (``/docs``, its Swagger UI
files under ``/docs/assets/``, and the schema ``/openapi.json``); the pages send the token with
every API call. ``SPARKTRAINER_API_OPEN_READS`` leaves GET
and HEAD requests open (they establish no tenant unless they carry a token).
"""

from __future__ import annotations

import hmac
import json
from typing import Any

from starlette.requests import Request
from starlette.types import ASGIApp, Receive, Scope, Send

from sparktrainer.contracts.tenants import DEFAULT_TENANT, Tenants, load_tenants
from sparktrainer.settings import Settings

OPEN_PATHS = frozenset({"/api/health", "/", "/docs", "/openapi.json"})
OPEN_PREFIXES = ("/static/", "/docs/assets/")
READS = frozenset({"GET", "HEAD"})
MESSAGE = "Missing or wrong bearer token: send 'Authorization: Bearer <token>'"
TENANT_KEY = "sparktrainer_tenant"


class ApiCredentials:
    """The API's tokens: which tenant each establishes (built once per app)."""

    def __init__(self, settings: Settings, tenants: Tenants | None = None) -> None:
        self.tenants = tenants if tenants is not None else load_tenants(settings.tenants_file)
        token = settings.api_token
        self._default_token = token.get_secret_value().encode() if token else None
        self.required = self._default_token is not None or self.tenants.has_tokens()

    def tenant(self, authorization: str) -> str | None:
        """The tenant an ``Authorization`` header establishes; None when it establishes none."""
        if not self.required:
            return DEFAULT_TENANT
        scheme, _, given = authorization.partition(" ")
        given = given.strip()
        if scheme.lower() != "bearer" or not given:
            return None
        if self._default_token is not None and hmac.compare_digest(
            given.encode("utf-8", "surrogateescape"), self._default_token
        ):
            return DEFAULT_TENANT
        found = self.tenants.by_token(given)
        return found.name if found else None


def tenant_of(request: Request) -> str:
    """The tenant the guard established for this request (the default one when none)."""
    return str(request.scope.get(TENANT_KEY) or DEFAULT_TENANT)


class TokenGuard:
    """Answers 401 to any HTTP request without a known token (when one is configured)."""

    def __init__(self, app: ASGIApp, credentials: ApiCredentials, open_reads: bool) -> None:
        self.app, self.credentials, self.open_reads = app, credentials, open_reads

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        authorization = ""
        for key, value in scope["headers"]:
            if key.lower() == b"authorization":
                authorization = value.decode("latin-1")
        tenant = self.credentials.tenant(authorization)
        if tenant is not None:
            scope[TENANT_KEY] = tenant
        if tenant is not None or self._open(scope):
            await self.app(scope, receive, send)
            return
        await send_error(send, 401, MESSAGE, ((b"www-authenticate", b"Bearer"),))

    def _open(self, scope: Scope) -> bool:
        path = scope["path"]
        if path in OPEN_PATHS or path.startswith(OPEN_PREFIXES):
            return True
        return self.open_reads and scope["method"] in READS


async def send_error(
    send: Send, status: int, detail: str, headers: tuple[tuple[bytes, bytes], ...] = ()
) -> None:
    """Answer ``{"detail": ...}`` with ``status`` straight from a middleware."""
    body = json.dumps({"detail": detail}).encode()
    start: dict[str, Any] = {
        "type": "http.response.start",
        "status": status,
        "headers": [
            (b"content-type", b"application/json"),
            (b"content-length", str(len(body)).encode()),
            *headers,
        ],
    }
    await send(start)
    await send({"type": "http.response.body", "body": body})
