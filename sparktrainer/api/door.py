"""The HTTP door's shape checks, before any route: which Host it answers, what a write carries.

A page on another site can make a browser send a "simple" request (a form, or ``fetch`` with
``no-cors``) to the local API: it cannot set ``Content-Type: application/json`` without a CORS
preflight we never grant, so every write needs that type (415 otherwise). A page on a rebound
DNS name reaches the API with its own name in ``Host``: only the allowlisted names are answered
(421 otherwise; ``SPARKTRAINER_API_ALLOWED_HOSTS``, default the bind address and localhost).
/api/health stays open to any Host (a probe sends the pod's address; it tells nothing).
"""

from __future__ import annotations

from starlette.types import ASGIApp, Receive, Scope, Send

from sparktrainer.api.auth import send_error
from sparktrainer.settings import Settings

WRITES = frozenset({"POST", "PUT", "PATCH", "DELETE"})
LOCAL_HOSTS = ("localhost", "127.0.0.1", "::1")
ANY_HOST = "*"
HEALTH = "/api/health"


def allowed_hosts(settings: Settings) -> frozenset[str]:
    """The Host names the API answers (lowercase, no port); ``{"*"}`` for any."""
    listed = {h.strip().lower() for h in settings.api_allowed_hosts.split(",") if h.strip()}
    return frozenset(listed or {settings.api_host.lower(), *LOCAL_HOSTS})


def host_name(header: str) -> str:
    """The name part of a Host header: ``[::1]:8080`` -> ``::1``, ``api:8080`` -> ``api``."""
    header = header.strip().lower()
    if header.startswith("["):
        return header[1:].partition("]")[0]
    return header.rpartition(":")[0] if header.count(":") == 1 else header


class DoorGuard:
    """421 for a Host not allowlisted, 415 for a write that is not ``application/json``."""

    def __init__(self, app: ASGIApp, settings: Settings) -> None:
        self.app, self.hosts = app, allowed_hosts(settings)

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        headers = {k.lower(): v for k, v in scope["headers"]}
        host = host_name(headers.get(b"host", b"").decode("latin-1"))
        if ANY_HOST not in self.hosts and host not in self.hosts and scope["path"] != HEALTH:
            shown = host[:80] or "(none)"
            await send_error(
                send,
                421,
                f"This API does not answer for Host '{shown}': add it to "
                "SPARKTRAINER_API_ALLOWED_HOSTS if it is this server's name",
            )
            return
        content_type = headers.get(b"content-type", b"").decode("latin-1")
        media = content_type.partition(";")[0].strip().lower()
        if scope["method"] in WRITES and media != "application/json":
            await send_error(
                send,
                415,
                f"A {scope['method']} needs 'Content-Type: application/json' (got "
                f"'{content_type[:80] or 'none'}'); send a JSON body, {{}} when it has no fields",
            )
            return
        await self.app(scope, receive, send)
