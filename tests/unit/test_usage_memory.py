"""Usage through the bus, the read model, the API (each tenant's token), the client and the
CLI, on the in-memory broker: every job's attempts add up to its tenant's figures everywhere."""

from __future__ import annotations

import asyncio
import io
import json
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import httpx
import pytest
from pydantic import SecretStr

from sparktrainer.api.app import create_app
from sparktrainer.cli import common
from sparktrainer.cli.common import publish
from sparktrainer.cli.main import main as cli
from sparktrainer.client import AsyncClient
from sparktrainer.client.errors import Unauthorized
from sparktrainer.contracts.envelope import encode
from sparktrainer.contracts.events import JobCompleted, JobFailed, JobValidated
from sparktrainer.contracts.tenants import token_digest
from sparktrainer.contracts.usage import AttemptUsage
from sparktrainer.settings import Settings

pytestmark = pytest.mark.memory
TOKENS = {"default": "operator-token", "alpha": "alpha-token", "beta": "beta-token"}
MLP = {"input_size": 4, "output_size": 2}
# job -> (tenant, class, GPUs, each attempt's (wall_s, cpu_s))
JOBS = {"a1": ("alpha", "gpu", 1, [(10.0, 4.0), (6.0, 2.5)]),
        "a2": ("alpha", "cpu", 0, [(3.0, 2.0)]),
        "b1": ("beta", "cpu", 0, [(8.0, 7.25)])}  # fmt: skip


def events() -> list[Any]:
    out: list[Any] = []
    for job_id, (tenant, cls, gpus, attempts) in JOBS.items():
        out.append(JobValidated(job_id=job_id, name=job_id, type="train", framework="pytorch",
                                config_kind="pytorch.mlp", config=MLP, tenant=tenant,
                                resource_class=cls, resources={"gpus": gpus}))  # type: ignore[arg-type]  # fmt: skip
        used = [AttemptUsage(attempt=n, wall_s=w, cpu_s=c, gpus=gpus)
                for n, (w, c) in enumerate(attempts, start=1)]  # fmt: skip
        end = JobCompleted if tenant == "alpha" else JobFailed
        fields = {"model_id": job_id} if end is JobCompleted else {"reason": "r", "error_type": "E"}
        out.append(end(job_id=job_id, attempt=len(used), usage=used, **fields))  # type: ignore[arg-type]
    return out


def expected(tenant: str) -> dict[str, float]:
    """The tenant's sums, from the attempts the test's jobs ran."""
    mine = [(g, a) for t, _, g, attempts in JOBS.values() if t == tenant for a in attempts]
    return {"wall_s": sum(w for _, (w, _) in mine), "cpu_s": sum(c for _, (_, c) in mine),
            "gpu_s": sum(g * w for g, (w, _) in mine), "attempts": len(mine)}  # fmt: skip


@pytest.fixture
def settings(memory_settings: Settings, tmp_path: Path) -> Settings:
    path = tmp_path / "tenants.json"
    tenants = [{"name": t, "token_sha256": [token_digest(TOKENS[t])]} for t in ("alpha", "beta")]
    path.write_text(json.dumps({"tenants": tenants}))
    return memory_settings.model_copy(
        update={"tenants_file": path, "api_token": SecretStr(TOKENS["default"])}
    )


@pytest.fixture
async def transport(settings: Settings, tmp_path: Path) -> AsyncIterator[httpx.ASGITransport]:
    app = create_app(settings, with_projector=True, db_path=tmp_path / "api.sqlite3")
    async with app.router.lifespan_context(app):
        for e in events():
            await publish(settings, encode(e, "test"))
        yield httpx.ASGITransport(app=app)


def as_tenant(transport: httpx.ASGITransport, tenant: str) -> httpx.AsyncClient:
    headers = {"Authorization": f"Bearer {TOKENS[tenant]}"}
    return httpx.AsyncClient(transport=transport, base_url="http://localhost", headers=headers)


def figures(found: dict[str, Any]) -> dict[str, float]:
    return {k: found["totals"][k] for k in ("wall_s", "cpu_s", "gpu_s", "attempts")}


async def test_usage_adds_up_per_tenant_in_the_api_client_and_cli(
    settings: Settings, transport: httpx.ASGITransport, tmp_path: Path, monkeypatch, capsys
) -> None:
    async with as_tenant(transport, "default") as operator:
        for _ in range(200):  # bounded: 20 s for the projector to fold the test's records
            everyone = (await operator.get("/api/usage")).json()["tenants"]
            if [figures(t)["attempts"] for t in everyone] == [3, 1]:
                break
            await asyncio.sleep(0.1)
        assert {t["tenant"]: figures(t) for t in everyone} == {
            "alpha": expected("alpha"), "beta": expected("beta")}  # fmt: skip
        job = (await operator.get("/api/jobs/a1")).json()["usage"]
        assert [a["attempt"] for a in job["attempts"]] == [1, 2] and job["gpu_s"] == 16.0
    async with as_tenant(transport, "alpha") as alpha:
        own = await alpha.get("/api/tenants/alpha/usage")
        assert own.status_code == 200 and figures(own.json()) == expected("alpha")
        assert sum(c["cpu_s"] for c in own.json()["classes"]) == expected("alpha")["cpu_s"]
        assert [t["tenant"] for t in (await alpha.get("/api/usage")).json()["tenants"]] == ["alpha"]
        other = await alpha.get("/api/tenants/beta/usage")
        assert other.status_code == 403 and "only its own" in other.json()["detail"]
    async with as_tenant(transport, "default") as operator:
        assert (await operator.get("/api/tenants/nobody/usage")).status_code == 404
        assert (await operator.get("/api/tenants/Bad.Name/usage")).status_code == 422
        assert (await operator.get("/api/tenants/beta/usage?days=0")).status_code == 422

    async with AsyncClient("http://localhost", TOKENS["beta"], transport=transport) as client:
        [beta] = await client.usage("beta")
        assert figures(beta.model_dump()) == expected("beta")
        assert [u.tenant for u in await client.usage()] == ["beta"]
        with pytest.raises(Unauthorized):
            await client.usage("alpha")

    monkeypatch.setattr("sparktrainer.cli.usage.load_settings", lambda: settings)
    db = str(tmp_path / "cli.sqlite3")
    assert await asyncio.to_thread(cli, ["usage", "--json", "--db", db]) == 0
    printed = json.loads(capsys.readouterr().out.splitlines()[-1])  # after the sync's log lines
    assert {t["tenant"]: figures(t) for t in printed["tenants"]} == {
        "alpha": expected("alpha"), "beta": expected("beta")}  # fmt: skip
    # The table goes to the CLI's console: give it a file of the test's own (what sys.stdout is
    # by then depends on what ran earlier in this process; once it was not capsys's).
    table_file = io.StringIO()
    monkeypatch.setattr(common.out, "_file", table_file)  # undone: back to None (sys.stdout)
    assert await asyncio.to_thread(cli, ["usage", "--tenant", "alpha", "--db", db]) == 0
    table = table_file.getvalue()
    assert "alpha" in table and "beta" not in table and "16.0" in table  # its GPU-seconds
