"""Registry changes through the real API on the in-memory broker: who asked, from the query too.

A DELETE rarely carries a body; ``?by=`` and ``?reason=`` say who and why there.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Callable

import httpx
import pytest

from sparktrainer.api.app import create_app
from sparktrainer.cli.common import publish
from sparktrainer.contracts.envelope import encode
from sparktrainer.contracts.events import Artifact, ModelRegistered
from sparktrainer.contracts.model_events import ModelAliasSet

pytestmark = pytest.mark.memory
JSON_TYPE = {"Content-Type": "application/json"}  # the door wants it on every write
HISTORY = "/api/registered-models/digits/aliases/prod/history"


@pytest.fixture
async def api(memory_settings, tmp_path) -> AsyncIterator[httpx.AsyncClient]:
    app = create_app(memory_settings, with_projector=True, db_path=tmp_path / "api.sqlite3")
    async with app.router.lifespan_context(app):
        transport = httpx.ASGITransport(app=app)
        async with httpx.AsyncClient(
            transport=transport, base_url="http://localhost", headers=JSON_TYPE
        ) as client:
            yield client


async def _until(api: httpx.AsyncClient, check: Callable[[httpx.Response], bool]) -> list:
    for _ in range(200):  # bounded: 20 s for the projector to fold a record or two
        r = await api.get(HISTORY)
        if check(r):
            return list(r.json()["history"])
        await asyncio.sleep(0.1)
    raise AssertionError(f"still {r.status_code} {r.text[:300]}")


async def test_delete_takes_by_and_reason_from_the_query(api, memory_settings) -> None:
    model = ModelRegistered(model_id="d1", job_id="d1", name="d1", framework="pytorch",
                            architecture={"architecture": "custom"}, register_as="digits",
                            artifacts=[Artifact(path="model.pth", size_bytes=1, sha256="ab" * 32)],
                            storage_prefix="models/d1/")  # fmt: skip
    await publish(memory_settings, encode(model, "test"))
    await publish(memory_settings, encode(ModelAliasSet(name="digits", alias="prod", version=1,
                                                        by="alice"), "test"))  # fmt: skip
    await _until(api, lambda r: r.status_code == 200)
    r = await api.delete("/api/registered-models/digits/aliases/prod?by=dave&reason=rollback")
    assert r.status_code == 202, r.text
    moves = await _until(api, lambda r: len(r.json()["history"]) == 2)
    assert [(m["action"], m["by"], m["reason"]) for m in moves] == [
        ("set", "alice", None), ("removed", "dave", "rollback")
    ]  # fmt: skip
    r = await api.delete("/api/registered-models/digits/aliases/prod?by=dave")
    assert r.status_code == 404 and "is not set" in r.json()["detail"]
    r = await api.delete("/api/models/d1?by=" + "x" * 257)
    assert r.status_code == 422 and "'by' must be" in r.json()["detail"]
