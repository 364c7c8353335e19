"""Registry changes through the real API on the in-memory broker: who asks, and who may.

Who asks is the tenant the bearer token establishes (``by``), never a claim; the body or, for a
DELETE that rarely carries one, the query may add a free-text ``actor`` and a ``reason``. Two
teams (tests/tenants_kit.py): ``vision`` owns ``digits``; ``speech`` may read it, not change it.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Callable

import httpx
import pytest

from sparktrainer.cli.common import publish
from sparktrainer.contracts.envelope import encode
from sparktrainer.contracts.events import Artifact, ModelRegistered
from sparktrainer.contracts.model_events import ModelAliasSet
from tests.api_kit import api_client
from tests.tenants_kit import TwoTeams, write_two_teams

pytestmark = pytest.mark.memory
HISTORY = "/api/registered-models/digits/aliases/prod/history"


@pytest.fixture
def teams(tmp_path) -> TwoTeams:
    return write_two_teams(tmp_path)


@pytest.fixture
async def api(memory_settings, teams, tmp_path) -> AsyncIterator[httpx.AsyncClient]:
    async with api_client(teams.settings(memory_settings), tmp_path / "api.sqlite3") as client:
        yield client


async def _until(
    api: httpx.AsyncClient, teams: TwoTeams, check: Callable[[httpx.Response], bool]
) -> list:
    for _ in range(200):  # bounded: 20 s for the projector to fold a record or two
        r = await api.get(HISTORY, headers=teams.auth("speech"))  # reads are every tenant's
        if check(r):
            return list(r.json()["history"])
        await asyncio.sleep(0.1)
    raise AssertionError(f"still {r.status_code} {r.text[:300]}")


async def _vision_owns_digits(memory_settings) -> None:
    model = ModelRegistered(model_id="d1", job_id="d1", name="d1", framework="pytorch",
                            architecture={"architecture": "custom"}, register_as="digits",
                            artifacts=[Artifact(path="model.pth", size_bytes=1, sha256="ab" * 32)],
                            storage_prefix="models/d1/", tenant="vision")  # fmt: skip
    await publish(memory_settings, encode(model, "test"))
    alias = ModelAliasSet(name="digits", alias="prod", version=1, tenant="vision", by="vision")
    await publish(memory_settings, encode(alias, "test"))


async def test_the_owner_changes_with_its_token_the_actor_beside_it(
    api, teams, memory_settings
) -> None:
    await _vision_owns_digits(memory_settings)
    await _until(api, teams, lambda r: r.status_code == 200)
    vision = teams.auth("vision")
    url = "/api/registered-models/digits/aliases/prod"
    r = await api.delete(url + "?actor=dave&reason=rollback", headers=vision)
    assert r.status_code == 202, r.text
    moves = await _until(api, teams, lambda r: len(r.json()["history"]) == 2)
    assert [(m["action"], m["by"], m["reason"]) for m in moves] == [
        ("set", "vision", None), ("removed", "vision (dave)", "rollback")
    ]  # fmt: skip
    r = await api.delete(url + "?actor=dave", headers=vision)
    assert r.status_code == 404 and "is not set" in r.json()["detail"]
    r = await api.delete("/api/models/d1?actor=" + "x" * 129, headers=vision)
    assert r.status_code == 422 and "'actor' must be" in r.json()["detail"]
    r = await api.delete("/api/models/d1?by=vision", headers=vision)
    assert r.status_code == 422 and "'by' is not taken from a request" in r.json()["detail"]


async def test_another_tenants_changes_are_refused_and_its_reads_are_open(
    api, teams, memory_settings
) -> None:
    await _vision_owns_digits(memory_settings)
    await _until(api, teams, lambda r: r.status_code == 200)
    speech = teams.auth("speech")
    tries = [
        api.put("/api/registered-models/digits/aliases/prod", json={"version": 1}, headers=speech),
        api.delete("/api/registered-models/digits/aliases/prod", headers=speech),
        api.post("/api/models/digits@prod/archive", json={"actor": "mallory"}, headers=speech),
        api.delete("/api/models/d1", headers=speech),
    ]
    for answer in [await t for t in tries]:
        assert answer.status_code == 403, answer.text
        assert "belongs to tenant 'vision', not to 'speech'" in answer.json()["detail"]
    # the same move forged onto the topic in speech's name: skipped and counted by the fold
    forged = ModelAliasSet(name="digits", alias="prod", version=1, tenant="speech", by="vision")
    await publish(memory_settings, encode(forged, "intruder"))
    for _ in range(200):  # bounded: 20 s for the projector to fold it
        if (await api.get("/api/health")).json()["foreign_records"] == 1:
            break
        await asyncio.sleep(0.1)
    else:
        raise AssertionError("the forged move was not counted")
    moves = await _until(api, teams, lambda r: r.status_code == 200)
    assert [(m["action"], m["by"]) for m in moves] == [("set", "vision")]
    listed = (await api.get("/api/models", headers=speech)).json()["models"]
    assert [(m["model_id"], m["tenant"], m["status"]) for m in listed] == [("d1", "vision", "live")]
    shown = (await api.get("/api/models/digits@prod", headers=speech)).json()
    assert shown["tenant"] == "vision" and shown["aliases"] == ["digits@prod"]


async def test_validate_says_whose_name_a_register_as_is(api, teams, memory_settings) -> None:
    await _vision_owns_digits(memory_settings)
    await _until(api, teams, lambda r: r.status_code == 200)
    job = {"type": "train", "framework": "pytorch", "register_as": "digits",
           "config": {"architecture": "custom", "input_size": 64, "output_size": 10,
                      "data": {"source": "digits"}}}  # fmt: skip
    speech = (await api.post("/api/jobs/validate", json=job, headers=teams.auth("speech"))).json()
    assert speech["valid"] is False
    assert speech["errors"] == [
        "register_as 'digits' is a model name of tenant 'vision', not of 'speech': only the "
        "tenant that registered a name's first version adds versions to it; register under a "
        "name of your own (you may still fine-tune from its models)"
    ]
    vision = (await api.post("/api/jobs/validate", json=job, headers=teams.auth("vision"))).json()
    assert vision["valid"] is True, vision
