"""The bearer token: with ``SPARKTRAINER_API_TOKEN`` set, every route but /api/health needs it.

One ASGI middleware in front of every route (the docs, OpenAPI and /metrics included), so a
route added later is protected without saying so. Open besides /api/health: the dashboard's
shell (``/`` and its files under ``/static/``, the same files as in the package, no data); the
page itself sends the token with every API call. ``SPARKTRAINER_API_OPEN_READS`` leaves GET
and HEAD requests open.
"""

from __future__ import annotations

import hmac
import json
from typing import Any

from starlette.types import ASGIApp, Receive, Scope, Send

from sparktrainer.settings import Settings

OPEN_PATHS = frozenset({"/api/health", "/"})
OPEN_PREFIXES = ("/static/",)
READS = frozenset({"GET", "HEAD"})
MESSAGE = "Missing or wrong bearer token: send 'Authorization: Bearer <token>'"


def token_matches(settings: Settings, authorization: str) -> bool:
    """Whether an ``Authorization`` header carries the configured token (constant time)."""
    expected = settings.api_token
    if expected is None:
        return True
    scheme, _, given = authorization.partition(" ")
    return scheme.lower() == "bearer" and hmac.compare_digest(
        given.strip().encode(), expected.get_secret_value().encode()
    )


class TokenGuard:
    """Answers 401 to any HTTP request without the token (when one is set)."""

    def __init__(self, app: ASGIApp, settings: Settings) -> None:
        self.app, self.settings = app, settings

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http" or self._open(scope):
            await self.app(scope, receive, send)
            return
        headers = {k.decode("latin-1").lower(): v.decode("latin-1") for k, v in scope["headers"]}
        if token_matches(self.settings, headers.get("authorization", "")):
            await self.app(scope, receive, send)
            return
        body = json.dumps({"detail": MESSAGE}).encode()
        await send(_start(401, body))
        await send({"type": "http.response.body", "body": body})

    def _open(self, scope: Scope) -> bool:
        path = scope["path"]
        if self.settings.api_token is None or path in OPEN_PATHS or path.startswith(OPEN_PREFIXES):
            return True
        return self.settings.api_open_reads and scope["method"] in READS


def _start(status: int, body: bytes) -> dict[str, Any]:
    return {
        "type": "http.response.start",
        "status": status,
        "headers": [
            (b"content-type", b"application/json"),
            (b"content-length", str(len(body)).encode()),
            (b"www-authenticate", b"Bearer"),
        ],
    }
