"""The HTTP API through the real app (ASGI) against the real broker, projector in-process."""

from __future__ import annotations

import asyncio
import json
from collections.abc import AsyncIterator, Callable
from pathlib import Path
from typing import Any

import httpx
import pytest
from pydantic import SecretStr

from sparktrainer.api.app import create_app
from sparktrainer.bus.kafka import ensure_topics
from sparktrainer.contracts.envelope import header_map
from sparktrainer.contracts.events import CancelRequested, JobSubmitted
from sparktrainer.contracts.topics import JOBS_CONTROL, JOBS_SUBMITTED
from sparktrainer.storage.s3 import ObjectStore
from sparktrainer.validation.checks import validate_job
from tests.integration.registry_kit import (
    GUIDE_MLP,
    JSON,
    completed,
    model,
    progress,
    publish,
    started,
    unique,
    validated,
)
from tests.integration.tap import Tap

pytestmark = pytest.mark.integration


@pytest.fixture(scope="module")
async def client(stack, tmp_path_factory) -> AsyncIterator[httpx.AsyncClient]:
    await ensure_topics(stack)  # the taps below read jobs.control too
    app = create_app(stack, with_projector=True, db_path=tmp_path_factory.mktemp("api") / "r.db")
    async with app.router.lifespan_context(app):
        transport = httpx.ASGITransport(app=app)
        async with httpx.AsyncClient(
            transport=transport, base_url="http://localhost", headers=JSON
        ) as c:
            await poll(c, "/api/health", lambda r: r.json()["projector"]["ready"])
            yield c


async def poll(
    client: httpx.AsyncClient,
    path: str,
    until: Callable[[httpx.Response], bool],
    timeout_s: float = 30,
) -> httpx.Response:
    deadline = asyncio.get_running_loop().time() + timeout_s
    while True:
        r = await client.get(path)
        if until(r):
            return r
        if asyncio.get_running_loop().time() > deadline:
            raise AssertionError(f"{path}: still {r.status_code} {r.text[:300]} after {timeout_s}s")
        await asyncio.sleep(0.05)


def status_is(*statuses: str) -> Callable[[httpx.Response], bool]:
    return lambda r: r.status_code == 200 and r.json()["status"] in statuses


async def test_submit_publishes_a_cloudevent_keyed_by_a_new_job_id(stack, client) -> None:
    async with Tap(stack, JOBS_SUBMITTED) as tap:
        r = await client.post("/api/jobs", json=GUIDE_MLP)
        assert r.status_code == 202, r.text
        job_id = r.json()["job_id"]
        [event] = await tap.wait_for(lambda e: getattr(e, "job_id", None) == job_id)
    record = next(rec for rec in tap.records if rec.key == job_id.encode())
    headers = header_map(record.headers)
    assert headers["ce_type"] == JobSubmitted.ce_type and headers["ce_subject"] == job_id
    assert headers["content-type"] == "application/json"
    assert isinstance(event, JobSubmitted) and event.config == GUIDE_MLP["config"]
    # The projector folds the submission: the job is visible (a validator may be further on).
    r = await poll(client, f"/api/jobs/{job_id}", lambda r: r.status_code == 200)
    assert r.json()["status"] in ("submitted", "validated", "rejected")


async def test_submit_keeps_a_given_job_id(client) -> None:
    job_id = unique("given")
    r = await client.post("/api/jobs", json={**GUIDE_MLP, "job_id": job_id})
    assert (r.status_code, r.json()["job_id"]) == (202, job_id)


async def test_validate_gives_the_validators_verdict(stack, client) -> None:
    store = ObjectStore.from_settings(stack) if stack.s3_endpoint else None
    bad = {
        "type": "train",
        "framework": "pytorch",
        "config": {"architecture": "custom", "epochs": -1},
    }
    missing = {
        "type": "finetune",
        "framework": "pytorch",
        "config": {"model_source": "model_id", "model_id": unique("nope"), "num_classes": 3},
    }
    for body in (GUIDE_MLP, bad, missing, {"framework": "tensorflow", "type": "x"}):
        r = await client.post("/api/jobs/validate", json=body)
        assert r.status_code == 200, r.text
        expected = validate_job(body, store, stack.limits)
        assert r.json() == {
            "valid": expected.valid,
            "errors": expected.errors,
            "warnings": expected.warnings,
        }
    assert (await client.post("/api/jobs/validate", json=GUIDE_MLP)).json()["valid"] is True
    verdict = (await client.post("/api/jobs/validate", json=bad)).json()
    assert verdict["valid"] is False and any("epochs" in e for e in verdict["errors"])


async def test_job_status_follows_the_lifecycle(stack, client) -> None:
    job_id = unique("life")
    await publish(stack, validated(job_id), started(job_id), progress(job_id, 1, loss=0.7))
    r = await poll(
        client,
        f"/api/jobs/{job_id}",
        lambda r: r.status_code == 200 and (r.json().get("progress") or {}).get("loss") == 0.7,
    )
    job = r.json()
    assert (job["status"], job["progress"]["epoch"], job["progress"]["eta_s"]) == (
        "running",
        1,
        3.0,
    )
    await publish(stack, completed(job_id), progress(job_id, 2, loss=0.1))  # late progress
    r = await poll(client, f"/api/jobs/{job_id}", status_is("completed"))
    await asyncio.sleep(0.3)
    job = (await client.get(f"/api/jobs/{job_id}")).json()
    assert (job["status"], job["model_id"], job["progress"]["epoch"]) == ("completed", job_id, 1)
    listed = (await client.get("/api/jobs", params={"status": "completed", "limit": 1000})).json()
    assert job_id in [j["job_id"] for j in listed["jobs"]]


async def test_cancel_publishes_a_cancel_request(stack, client) -> None:
    job_id = unique("cancel")
    await publish(stack, validated(job_id), started(job_id))
    await poll(client, f"/api/jobs/{job_id}", status_is("running"))
    async with Tap(stack, JOBS_CONTROL) as tap:
        r = await client.post(f"/api/jobs/{job_id}/cancel", json={"reason": "enough"})
        assert r.status_code == 202, r.text
        [event] = await tap.wait_for(lambda e: getattr(e, "job_id", None) == job_id)
    assert isinstance(event, CancelRequested) and event.reason == "enough"
    await publish(stack, completed(job_id))
    await poll(client, f"/api/jobs/{job_id}", status_is("completed"))
    r = await client.post(f"/api/jobs/{job_id}/cancel", json={})
    assert r.status_code == 409 and "already ended" in r.json()["detail"]


async def test_models_list_detail_and_lineage(stack, client) -> None:
    tag = unique("tag")
    root, child, grand = unique("root"), unique("child"), unique("grand")
    await publish(
        stack,
        model(root, tags=[tag]),
        model(child, base=root, tags=[tag, "ft"]),
        model(grand, base=child, lineage=[child, root], tags=[tag]),
        model(unique("other")),
    )
    r = await poll(client, "/api/models", lambda r: r.json()["total"] >= 3, timeout_s=30)
    r = await poll(client, f"/api/models?tag={tag}", lambda r: r.json()["total"] == 3)
    assert [m["model_id"] for m in r.json()["models"]] == [grand, child, root]
    page = (await client.get("/api/models", params={"tag": tag, "limit": 1, "offset": 1})).json()
    assert ([m["model_id"] for m in page["models"]], page["total"]) == ([child], 3)
    by_base = (await client.get("/api/models", params={"base_model_id": root})).json()
    assert [m["model_id"] for m in by_base["models"]] == [child]
    none = (await client.get("/api/models", params={"tag": tag, "framework": "huggingface"})).json()
    assert none["total"] == 0
    detail = (await client.get(f"/api/models/{child}")).json()
    assert detail["metrics"] == {"accuracy": 0.9} and detail["size_bytes"] == 1290
    assert {a["key"]: a["sha256"] for a in detail["artifacts"]} == {
        f"models/{child}/model.pth": "a" * 64,
        f"models/{child}/config.json": "b" * 64,
    }
    tree = (await client.get(f"/api/models/{grand}/lineage")).json()
    assert [a["model_id"] for a in tree["ancestors"]] == [child, root]
    tree = (await client.get(f"/api/models/{root}/lineage")).json()
    assert (tree["ancestors"], [c["model_id"] for c in tree["children"]]) == ([], [child])


BAD_REQUESTS: list[tuple[str, str, dict[str, Any], int]] = [
    ("POST", "/api/jobs", {"content": b"{not json"}, 400),
    ("POST", "/api/jobs", {"content": b""}, 400),
    ("POST", "/api/jobs", {"content": b"\xff\xfe"}, 400),
    ("POST", "/api/jobs", {"content": b"[1, 2]"}, 422),
    ("POST", "/api/jobs", {"content": b"null"}, 422),
    ("POST", "/api/jobs", {"json": {"type": 5, "framework": "pytorch"}}, 422),
    ("POST", "/api/jobs", {"json": {"framework": "pytorch", "config": {}}}, 422),
    ("POST", "/api/jobs", {"json": {**GUIDE_MLP, "config": [1]}}, 422),
    ("POST", "/api/jobs", {"json": {**GUIDE_MLP, "surprise": 1}}, 422),
    ("POST", "/api/jobs", {"json": {**GUIDE_MLP, "job_id": "../etc"}}, 422),
    ("POST", "/api/jobs", {"content": b'{"name": "' + b"x" * 300_000 + b'"}'}, 413),
    ("POST", "/api/jobs/validate", {"content": b"{"}, 400),
    ("POST", "/api/jobs/validate", {"content": b'"a string"'}, 422),
    ("GET", "/api/jobs?limit=0", {}, 422),
    ("GET", "/api/jobs?limit=abc", {}, 422),
    ("GET", "/api/jobs?status=bogus", {}, 422),
    ("GET", "/api/jobs?offset=-1", {}, 422),
    ("GET", "/api/jobs/no-such-job", {}, 404),
    ("POST", "/api/jobs/no-such-job/cancel", {}, 404),
    ("POST", "/api/jobs/x/cancel", {"content": b"{oops"}, 400),
    ("POST", "/api/jobs/x/cancel", {"json": {"reason": 42}}, 422),
    ("GET", "/api/models?limit=100000", {}, 422),
    ("GET", "/api/jobs?offset=99999999999999999999", {}, 422),
    ("GET", "/api/models?offset=9223372036854775808", {}, 422),
    ("POST", "/api/jobs", {"content": b'{"config": ' + b"[" * 50 + b"]" * 50 + b"}"}, 422),
    ("POST", "/api/jobs/validate", {"content": b'{"a": ' + b"[" * 5000 + b"]" * 5000 + b"}"}, 400),
    ("POST", "/api/jobs", {"content": b'{"name": NaN}'}, 400),
    ("GET", "/api/models/no-such-model", {}, 404),
    ("GET", "/api/models/no-such-model/lineage", {}, 404),
    ("GET", "/api/nothing-here", {}, 404),
    ("DELETE", "/api/models", {}, 405),
]


@pytest.mark.parametrize(("method", "path", "kwargs", "status"), BAD_REQUESTS)
async def test_bad_requests_get_a_readable_4xx(client, method, path, kwargs, status) -> None:
    r = await client.request(method, path, **kwargs)
    assert r.status_code == status, r.text
    body = r.json()
    assert isinstance(body["detail"], str) and body["detail"]


async def test_with_a_token_every_route_but_health_needs_it(stack, tmp_path: Path) -> None:
    settings = stack.model_copy(update={"api_token": SecretStr("s3cret")})
    app = create_app(settings, db_path=tmp_path / "r.db")
    async with app.router.lifespan_context(app):
        transport = httpx.ASGITransport(app=app)
        async with httpx.AsyncClient(
            transport=transport, base_url="http://localhost", headers=JSON
        ) as c:
            assert (await c.post("/api/jobs", json=GUIDE_MLP)).status_code == 401
            wrong = {"Authorization": "Bearer nope"}
            r = await c.post("/api/jobs", json=GUIDE_MLP, headers=wrong)
            assert r.status_code == 401 and r.headers["www-authenticate"] == "Bearer"
            assert "Bearer <token>" in r.json()["detail"]
            paths = (
                "/api/jobs",
                "/api/models",
                "/api/models/x",
                "/metrics",
            )
            for path in paths:
                assert (await c.get(path)).status_code == 401, path
                assert (await c.get(path, headers=wrong)).status_code == 401, path
            assert (await c.post("/api/jobs/x/cancel", json={}, headers=wrong)).status_code == 401
            assert (await c.post("/api/jobs/validate", json=GUIDE_MLP)).status_code == 401
            for shell in (
                "/api/health",
                "/",
                "/static/app.js",
                "/docs",
                "/docs/assets/swagger-ui-bundle.js",
                "/openapi.json",
            ):  # no data: the pages send the token
                assert (await c.get(shell)).status_code == 200, shell
            schema = (await c.get("/openapi.json")).json()
            assert schema["components"]["securitySchemes"]["bearer"]["scheme"] == "bearer"
            assert schema["security"] == [{"bearer": []}]  # Swagger's Authorize asks for it
            right = {"Authorization": "Bearer s3cret"}
            assert (await c.post("/api/jobs", json=GUIDE_MLP, headers=right)).status_code == 202
            assert (await c.get("/api/models", headers=right)).status_code == 200
    opened = settings.model_copy(update={"api_open_reads": True})
    app = create_app(opened, db_path=tmp_path / "r.db")
    async with app.router.lifespan_context(app):
        transport = httpx.ASGITransport(app=app)
        async with httpx.AsyncClient(
            transport=transport, base_url="http://localhost", headers=JSON
        ) as c:
            assert (await c.get("/api/models")).status_code == 200  # reads left open
            assert (await c.post("/api/jobs", json=GUIDE_MLP)).status_code == 401


async def test_a_chunked_body_is_cut_off_at_the_limit(client) -> None:
    sent = 0

    async def endless():  # no content-length: the size is only known while it streams
        nonlocal sent
        yield b'{"name": "'
        for _ in range(10_000):
            sent += 64 * 1024
            yield b"x" * (64 * 1024)

    r = await client.post("/api/jobs", content=endless())
    assert r.status_code == 413 and "over the limit" in r.json()["detail"], r.text
    assert sent < 10_000 * 64 * 1024  # it stopped reading


async def test_kafka_down_is_503_not_500(stack, tmp_path: Path) -> None:
    settings = stack.model_copy(update={"kafka_bootstrap_servers": "127.0.0.1:1"})
    app = create_app(settings, db_path=tmp_path / "r.db")
    async with app.router.lifespan_context(app):
        transport = httpx.ASGITransport(app=app)
        async with httpx.AsyncClient(
            transport=transport, base_url="http://localhost", headers=JSON
        ) as c:
            r = await c.post("/api/jobs", json=GUIDE_MLP)
            assert r.status_code == 503 and "nothing was published" in r.json()["detail"]
            assert (await c.get("/api/models")).status_code == 200


def test_openapi_lists_every_endpoint(stack, tmp_path: Path) -> None:
    paths = create_app(stack, db_path=tmp_path / "r.db").openapi()["paths"]
    assert set(paths) >= {
        "/api/jobs",
        "/api/jobs/validate",
        "/api/jobs/{job_id}",
        "/api/jobs/{job_id}/cancel",
        "/api/models",
        "/api/models/{ref}",
        "/api/models/{ref}/lineage",
        "/api/models/{ref}/archive",
        "/api/models/{ref}/files",
        "/api/models/{ref}/files/{path}",
        "/api/registered-models",
        "/api/registered-models/{name}",
        "/api/registered-models/{name}/aliases/{alias}",
        "/api/registered-models/{name}/aliases/{alias}/history",
    }
    assert json.dumps(paths)  # serializable
