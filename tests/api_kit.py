"""The API in this process, for wiring tests: the app with its in-process projector, and an
httpx client on it that talks to the door as it wants (Host localhost, JSON on writes)."""

from __future__ import annotations

import contextlib
from collections.abc import AsyncIterator
from pathlib import Path

import httpx

from sparktrainer.api.app import create_app
from sparktrainer.settings import Settings

JSON_TYPE = {"Content-Type": "application/json"}  # the door wants it on every write


@contextlib.asynccontextmanager
async def api_client(settings: Settings, db_path: Path) -> AsyncIterator[httpx.AsyncClient]:
    """A client of the app (its projector folding into ``db_path``), started and stopped."""
    app = create_app(settings, with_projector=True, db_path=db_path)
    async with app.router.lifespan_context(app):
        transport = httpx.ASGITransport(app=app)
        async with httpx.AsyncClient(
            transport=transport, base_url="http://localhost", headers=JSON_TYPE
        ) as client:
            yield client
