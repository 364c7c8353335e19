"""The HTTP door's rules without a broker: Host allowlist, JSON writes, tokens per tenant,
bounded method labels, and bodies that cannot make a route answer 500."""

from __future__ import annotations

import json
from collections.abc import AsyncIterator
from pathlib import Path

import httpx
import pytest
from pydantic import SecretStr, ValidationError

from sparktrainer.api.app import create_app
from sparktrainer.api.auth import ApiCredentials
from sparktrainer.api.door import allowed_hosts, host_name
from sparktrainer.contracts.tenants import Tenants, token_digest
from sparktrainer.settings import Settings

JSON = {"content-type": "application/json"}


def _settings(tmp_path: Path, **update: object) -> Settings:
    # Kafka at a closed port: a write that got past the door would answer 503, never 2xx.
    base = Settings(home=tmp_path, kafka_bootstrap_servers="127.0.0.1:1")
    return base.model_copy(update=update)


@pytest.fixture
async def api(tmp_path: Path) -> AsyncIterator[httpx.AsyncClient]:
    app = create_app(_settings(tmp_path), db_path=tmp_path / "r.db")
    transport = httpx.ASGITransport(app=app)
    async with httpx.AsyncClient(transport=transport, base_url="http://localhost") as c:
        yield c


async def test_a_foreign_host_gets_421_but_health_stays_open(api: httpx.AsyncClient) -> None:
    r = await api.get("/api/jobs", headers={"host": "evil.example:8080"})
    assert r.status_code == 421 and "SPARKTRAINER_API_ALLOWED_HOSTS" in r.json()["detail"]
    assert (await api.get("/api/health", headers={"host": "10.0.0.7:8080"})).status_code == 200
    for local in ("localhost:8080", "127.0.0.1", "[::1]:8080"):
        assert (await api.get("/api/health", headers={"host": local})).status_code == 200


def test_the_allowlist_defaults_to_the_bind_address_and_localhost(tmp_path: Path) -> None:
    assert allowed_hosts(_settings(tmp_path, api_host="10.1.2.3")) >= {"10.1.2.3", "localhost"}
    listed = allowed_hosts(_settings(tmp_path, api_allowed_hosts="api, Runner.Example"))
    assert listed == {"api", "runner.example"}
    assert [host_name(h) for h in ("a:1", "[::1]:80", "::1", "B")] == ["a", "::1", "::1", "b"]


@pytest.mark.parametrize(
    "method, path",
    [
        ("POST", "/api/jobs"),
        ("POST", "/api/jobs/x/cancel"),
        ("POST", "/api/models/m/archive"),
        ("DELETE", "/api/models/m"),
        ("PUT", "/api/registered-models/m/aliases/prod"),
    ],
)
async def test_writes_without_json_get_415(api: httpx.AsyncClient, method: str, path: str) -> None:
    for headers in ({}, {"content-type": "text/plain"}, {"content-type": "multipart/form-data"}):
        r = await api.request(method, path, content=b'{"reason": "x"}', headers=headers)
        assert r.status_code == 415 and "application/json" in r.json()["detail"], r.text


async def test_a_lone_surrogate_is_a_400_not_a_500(api: httpx.AsyncClient) -> None:
    body = b'{"version": 1, "by": "\\ud800"}'
    r = await api.put("/api/registered-models/m/aliases/prod", content=body, headers=JSON)
    assert r.status_code == 400 and "lone surrogate" in r.json()["detail"], r.text
    r = await api.post("/api/jobs", content=b'{"name": "\\udfff"}', headers=JSON)
    assert r.status_code == 400, r.text


async def test_made_up_methods_share_one_metrics_label(api: httpx.AsyncClient) -> None:
    for method in ("FOO", "BAR", "X" * 40):
        assert (await api.request(method, "/api/jobs")).status_code in (400, 405)
    text = (await api.get("/metrics")).text
    assert 'method="other"' in text
    assert "FOO" not in text and "BAR" not in text


def test_an_empty_token_is_refused_at_start(tmp_path: Path) -> None:
    with pytest.raises(ValidationError, match="set but empty"):
        Settings(api_token=SecretStr("  "))
    with pytest.raises(ValidationError, match="set but empty"):
        Settings(api_token="")  # type: ignore[arg-type]


def test_tokens_establish_their_tenant(tmp_path: Path) -> None:
    tenants = Tenants.model_validate(
        {"tenants": [{"name": "vision", "token_sha256": [token_digest("v-token")]}]}
    )
    open_door = ApiCredentials(_settings(tmp_path))
    assert not open_door.required and open_door.tenant("") == "default"
    credentials = ApiCredentials(_settings(tmp_path, api_token=SecretStr("root")), tenants)
    assert credentials.tenant("Bearer v-token") == "vision"
    assert credentials.tenant("bearer root") == "default"
    for wrong in ("", "Bearer", "Bearer ", "Bearer nope", "Basic v-token", "Bearer \udc80"):
        assert credentials.tenant(wrong) is None, wrong


async def test_with_tenant_tokens_a_request_needs_one(tmp_path: Path) -> None:
    path = tmp_path / "tenants.json"
    path.write_text(
        json.dumps({"tenants": [{"name": "nlp", "token_sha256": [token_digest("n-token")]}]})
    )
    app = create_app(_settings(tmp_path, tenants_file=path), db_path=tmp_path / "r.db")
    transport = httpx.ASGITransport(app=app)
    async with httpx.AsyncClient(transport=transport, base_url="http://localhost") as c:
        assert (await c.get("/api/jobs")).status_code == 401
        assert (await c.get("/api/jobs", headers={"authorization": "Bearer n-token"})).is_success
