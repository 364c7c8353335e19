"""The HTTP door with two teams on the in-memory broker: a submission goes in by the token's
tenant's door, another tenant's job cannot be cancelled (403), an own cancel carries the tenant,
and the read model shows each job's tenant (issue 17 items 4, 5)."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Callable
from pathlib import Path

import httpx
import pytest

from sparktrainer.cli.common import publish
from sparktrainer.contracts import topics as t
from sparktrainer.contracts.envelope import decode, encode
from sparktrainer.contracts.events import CancelRequested, JobValidated
from sparktrainer.settings import Settings
from tests.api_kit import api_client
from tests.conftest import KafkaHelper
from tests.tenants_kit import TwoTeams

pytestmark = pytest.mark.memory
MLP = {"architecture": "custom", "input_size": 4, "output_size": 2}
JOB = {"type": "train", "framework": "pytorch", "config": MLP}


@pytest.fixture
def teams(two_teams: TwoTeams) -> TwoTeams:  # the conftest fixture, under a short name
    return two_teams


@pytest.fixture
def settings(memory_settings: Settings, teams: TwoTeams) -> Settings:
    return teams.settings(memory_settings)


@pytest.fixture
async def api(settings: Settings, tmp_path: Path) -> AsyncIterator[httpx.AsyncClient]:
    async with api_client(settings, tmp_path / "api.sqlite3") as client:
        yield client


async def _shown(api: httpx.AsyncClient, job_id: str, auth: dict[str, str]) -> dict:
    for _ in range(200):  # bounded: 20 s for the projector to fold one record
        r = await api.get(f"/api/jobs/{job_id}", headers=auth)
        if r.status_code == 200:
            return dict(r.json())
        await asyncio.sleep(0.1)
    raise AssertionError(f"job {job_id} never shown: {r.status_code} {r.text[:200]}")


async def test_the_token_picks_the_door_and_only_the_owner_cancels(
    api: httpx.AsyncClient, settings: Settings, teams: TwoTeams, unique: Callable[[str], str]
) -> None:
    kafka = KafkaHelper(settings, unique)
    r = await api.post("/api/jobs", json={**JOB, "job_id": "v-1"}, headers=teams.auth("vision"))
    assert r.status_code == 202 and r.json()["tenant"] == "vision", r.text
    [rec] = await kafka.consume(teams.door("vision"), 1, timeout_s=10)
    assert rec.key == b"v-1"
    forged = {**JOB, "sweep_id": "sw", "trial": 1}
    r = await api.post("/api/jobs", json=forged, headers=teams.auth("vision"))
    assert r.status_code == 422 and "only the sweep controller" in r.json()["detail"]
    job = JobValidated(job_id="s-1", name="s", type="train", framework="pytorch",
                       config_kind="pytorch.mlp", config=MLP, tenant="speech")  # fmt: skip
    await publish(settings, encode(job, "test"))
    shown = await _shown(api, "s-1", teams.auth("vision"))  # reads are company-wide
    assert shown["tenant"] == "speech"
    r = await api.post("/api/jobs/s-1/cancel", headers=teams.auth("vision"))
    assert r.status_code == 403
    assert r.json()["detail"] == (
        "Job 's-1' belongs to tenant 'speech'; this token is tenant 'vision''s: only a job's "
        "own tenant may cancel it"
    )
    r = await api.post("/api/jobs/s-1/cancel", headers=teams.auth("speech"))
    assert r.status_code == 202, r.text
    [cancel] = await kafka.consume(t.JOBS_CONTROL, 1, timeout_s=10)
    event = decode(cancel.value, cancel.headers)
    assert isinstance(event, CancelRequested) and (event.job_id, event.tenant) == ("s-1", "speech")
    r = await api.post("/api/jobs/validate", json={**JOB, "priority": "high"},
                       headers=teams.auth("speech"))  # fmt: skip
    assert r.status_code == 200 and not r.json()["valid"]
    assert "above what tenant 'speech' may ask for" in r.json()["errors"][0], r.json()
    listed = (await api.get("/api/jobs", headers=teams.auth("speech"))).json()["jobs"]
    assert [(j["job_id"], j["tenant"]) for j in listed] == [("s-1", "speech")]
    await kafka.close()
