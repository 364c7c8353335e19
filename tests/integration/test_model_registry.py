"""The model registry on the real stack: names, versions, aliases, references, files, retirement.

One story on one name, in order: three trainings register versions 1, 2, 3; an alias moves
twice and keeps its history; a fine-tune of NAME@champion records the concrete parent; the
files download through the API with every sha256 matching; archive and delete (and the janitor
after the grace period) behave; a rebuild and a replay of every registry topic change nothing.
"""

from __future__ import annotations

import hashlib
import json
import uuid
from collections.abc import AsyncIterator
from typing import Any

import pytest

from sparktrainer.contracts.events import JobCompleted, JobRejected, JobValidated
from sparktrainer.contracts.topics import MODELS_CHANGES, MODELS_REGISTERED
from sparktrainer.registry import names, store
from sparktrainer.registry.models import list_models
from sparktrainer.registry.runner import Projector
from sparktrainer.replay.engine import replay
from sparktrainer.replay.spec import ReplaySpec
from sparktrainer.storage.s3 import ObjectStore
from tests.conftest import own_stack_fixture
from tests.integration.model_registry_kit import (
    AUTH,
    RegistryStack,
    end_of,
    job,
    registry_stack,
    run_jobs,
    until,
)
from tests.integration.tap import produce

pytestmark = pytest.mark.integration
stack = own_stack_fixture()  # these tests fold and replay the whole log
NAME = f"digits-{uuid.uuid4().hex[:8]}"
TRAIN, FINETUNE = "Initial Model Training", "Fine-tuning on New Task"


@pytest.fixture(scope="module")
async def rs(stack, tmp_path_factory) -> AsyncIterator[RegistryStack]:
    async with registry_stack(stack, tmp_path_factory.mktemp("registry-home")) as services:
        yield services


async def set_alias(rs: RegistryStack, alias: str, version: int, by: str) -> None:
    r = await rs.api.put(f"/api/registered-models/{NAME}/aliases/{alias}",
                         json={"version": version, "actor": by}, headers=AUTH)  # fmt: skip
    assert r.status_code == 202, r.text


async def _three_runs_with_one_name_are_versions_1_2_3(rs: RegistryStack, seen) -> None:
    jobs = [job(TRAIN, register_as=NAME) for _ in range(3)]
    events = await run_jobs(rs, *jobs)
    assert all(isinstance(end_of(evs), JobCompleted) for evs in events.values()), events
    r = await until(rs.api, f"/api/registered-models/{NAME}",
                    lambda r: r.status_code == 200 and len(r.json()["versions"]) == 3)  # fmt: skip
    versions = r.json()["versions"]
    assert [v["version"] for v in versions] == [1, 2, 3]
    assert sorted(v["model_id"] for v in versions) == sorted(j["job_id"] for j in jobs)
    seen["ids"] = {v["version"]: v["model_id"] for v in versions}
    listed = (await rs.api.get("/api/models", params={"name": NAME, "sort": "version"})).json()
    assert [(m["registered_name"], m["version"]) for m in listed["models"]] == [
        (NAME, 3), (NAME, 2), (NAME, 1)
    ]  # fmt: skip


async def _an_alias_moved_twice_keeps_its_history(rs: RegistryStack, seen) -> None:
    for version, by in ((1, "alice"), (3, "bob"), (2, "carol")):
        await set_alias(rs, "champion", version, by)
    path = f"/api/registered-models/{NAME}/aliases/champion/history"
    r = await until(rs.api, path, lambda r: r.status_code == 200 and len(r.json()["history"]) == 3)
    assert [(m["previous_version"], m["version"], m["by"]) for m in r.json()["history"]] == [
        (None, 1, "default (alice)"),  # the token's tenant, and the actor the body gave
        (1, 3, "default (bob)"),
        (3, 2, "default (carol)"),
    ]
    model = (await rs.api.get(f"/api/models/{NAME}@champion")).json()
    assert model["model_id"] == seen["ids"][2] and model["aliases"] == [f"{NAME}@champion"]
    refused = await rs.api.put(f"/api/registered-models/{NAME}/aliases/champion",
                               json={"version": 9}, headers=AUTH)  # fmt: skip
    assert refused.status_code == 404 and "no version 9" in refused.json()["detail"]


async def _a_finetune_from_the_champion_records_the_concrete_parent(
    rs: RegistryStack, seen
) -> None:
    probe = job(FINETUNE, model_id=f"{NAME}@nosuch")  # the validator's view is warm now
    end = end_of((await run_jobs(rs, probe))[probe["job_id"]])
    assert isinstance(end, JobRejected) and "has no alias 'nosuch'" in end.errors[0]
    # Moved, then submitted at once: the validator catches up again before it resolves.
    await set_alias(rs, "champion", 3, "dave")
    child = job(FINETUNE, model_id=f"{NAME}@champion", num_classes=5)
    events = (await run_jobs(rs, child))[child["job_id"]]
    [validated] = [e for e in events if isinstance(e, JobValidated)]
    v3 = seen["ids"][3]
    assert validated.config.model_id == v3  # type: ignore[attr-defined]
    assert validated.parent_ref is not None
    assert (validated.parent_ref.ref, validated.parent_ref.model_id) == (f"{NAME}@champion", v3)
    assert (validated.parent_ref.name, validated.parent_ref.version) == (NAME, 3)
    assert isinstance(end_of(events), JobCompleted), end_of(events)
    await set_alias(rs, "champion", 2, "erin")  # a later move changes nothing that ran
    r = await until(rs.api, f"/api/models/{child['job_id']}", lambda r: r.status_code == 200)
    assert r.json()["base_model_id"] == v3 and r.json()["lineage"][0] == v3
    seen["child"] = child["job_id"]


async def _a_download_through_the_api_matches_every_sha256(rs: RegistryStack, seen) -> None:
    ref = f"{NAME}:1"
    assert (await rs.api.get(f"/api/models/{ref}/files")).status_code == 401  # the token applies
    listing = (await rs.api.get(f"/api/models/{ref}/files", headers=AUTH)).json()
    registered = (await rs.api.get(f"/api/models/{ref}")).json()["artifacts"]
    paths = [f["path"] for f in listing["files"]]
    assert {"model.pth", "config.json", "metadata.json"} <= set(paths) and paths[
        -1
    ] == "metadata.json"
    for f in listing["files"]:
        r = await rs.api.get(f"/api/models/{ref}/files/{f['path']}", headers=AUTH)
        assert r.status_code == 200 and len(r.content) == f["size_bytes"]
        assert hashlib.sha256(r.content).hexdigest() == f["sha256"]
    assert {a["path"]: a["sha256"] for a in registered}.items() <= {
        f["path"]: f["sha256"] for f in listing["files"]
    }.items()
    whole = (await rs.api.get(f"/api/models/{ref}/files/model.pth", headers=AUTH)).content
    part = await rs.api.get(f"/api/models/{ref}/files/model.pth",
                            headers={**AUTH, "Range": "bytes=10-99"})  # fmt: skip
    assert part.status_code == 206 and part.content == whole[10:100]
    assert part.headers["content-range"] == f"bytes 10-99/{len(whole)}"
    missing = await rs.api.get(f"/api/models/{ref}/files/../../jobs/x", headers=AUTH)
    assert missing.status_code == 404


async def _archived_models_leave_lists_and_stay_parents(rs: RegistryStack, seen) -> None:
    r = await rs.api.post(f"/api/models/{NAME}:1/archive", json={"actor": "frank"}, headers=AUTH)
    assert r.status_code == 202, r.text
    await until(rs.api, f"/api/models/{seen['ids'][1]}", lambda r: r.json()["status"] == "archived")
    live = (await rs.api.get("/api/models", params={"name": NAME})).json()["models"]
    assert seen["ids"][1] not in {m["model_id"] for m in live}
    archived = (await rs.api.get("/api/models", params={"name": NAME, "status": "archived"})).json()
    assert [m["model_id"] for m in archived["models"]] == [seen["ids"][1]]
    child = job(FINETUNE, model_id=f"{NAME}:1", num_classes=5)
    events = (await run_jobs(rs, child))[child["job_id"]]
    [validated] = [e for e in events if isinstance(e, JobValidated)]
    assert any("is archived" in w for w in validated.warnings)
    assert isinstance(end_of(events), JobCompleted), end_of(events)


async def _deleted_models_are_tombstones_and_the_janitor_removes_their_files(
    rs: RegistryStack, seen, store: ObjectStore
) -> None:
    aliased = await rs.api.request("DELETE", f"/api/models/{NAME}@champion", headers=AUTH)
    assert aliased.status_code == 409 and "move or remove the alias" in aliased.json()["detail"]
    v1 = seen["ids"][1]
    r = await rs.api.request("DELETE", f"/api/models/{NAME}:1", json={"actor": "grace",
                             "reason": "trained on the wrong split"}, headers=AUTH)  # fmt: skip
    assert r.status_code == 202, r.text
    await until(rs.api, f"/api/models/{v1}", lambda r: r.json()["status"] == "deleted")
    rejected = (await run_jobs(rs, child := job(FINETUNE, model_id=f"{NAME}:1")))[child["job_id"]]
    end = end_of(rejected)
    assert isinstance(end, JobRejected), end
    assert "was deleted by default (grace)" in end.errors[0]
    assert "trained on the wrong split" in end.errors[0]
    gone = await rs.api.get(f"/api/models/{v1}/files", headers=AUTH)
    assert gone.status_code == 410
    janitor = rs.trainer.janitor
    await _sweeps_after_seeing(rs, v1)
    assert list(store.list(f"models/{v1}/")), "removed before its grace period"
    janitor.settings = janitor.settings.model_copy(update={"model_delete_grace_s": 0.0})
    purged = lambda r: (r.json()["retired"] or {}).get("files_removed_at") is not None  # noqa: E731
    tomb = await until(rs.api, f"/api/models/{v1}", purged)
    assert list(store.list(f"models/{v1}/")) == []
    retired = tomb.json()["retired"]
    assert (retired["deleted_by"], retired["files_removed"]) == (
        "default (grace)",
        len(tomb.json()["artifacts"]) + 1,
    )


async def _sweeps_after_seeing(rs: RegistryStack, model_id: str) -> None:
    """Wait until the janitor has seen the delete and swept twice since (within the grace)."""
    janitor = rs.trainer.janitor
    await until(rs.api, "/api/health", lambda _: model_id in janitor.deleted)
    swept = janitor.stats.sweeps
    await until(rs.api, "/api/health", lambda _: janitor.stats.sweeps >= swept + 2)


def registry_of(db) -> dict[str, Any]:
    conn = store.connect(db)
    try:
        return {
            "name": names.get_name(conn, NAME),
            "history": names.alias_history(conn, NAME),
            "models": list_models(conn, name=NAME, status="all", limit=100).items,
        }
    finally:
        conn.close()


async def _a_rebuild_and_a_replay_give_the_same_registry(rs: RegistryStack, seen, tmp_path) -> None:
    async def folded(db, rebuild: bool = False) -> dict[str, Any]:
        projector = Projector(rs.settings, db)
        await projector.start(rebuild=rebuild)
        await projector.catch_up(timeout_s=120)
        await projector.close()
        return registry_of(db)

    before = await folded(tmp_path / "a.db")
    assert [v["version"] for v in before["name"]["versions"]] == [1, 2, 3]
    assert len(before["history"]) == 5 and len(before["models"]) == 3
    assert await folded(tmp_path / "a.db", rebuild=True) == before
    keys = (NAME, *seen["ids"].values())
    for topic in (MODELS_REGISTERED, MODELS_CHANGES):
        stats = await replay(rs.settings, ReplaySpec(source=topic, keys=keys))
        assert stats.sent > 0
    assert await folded(tmp_path / "a.db") == before  # the copies folded, nothing changed
    assert await folded(tmp_path / "b.db") == before  # a fresh fold of the log with copies


def hostile_records() -> list[tuple[bytes | None, list[tuple[str, bytes]]]]:
    """Records of every shape a writer of the registry topics could send (none of them valid)."""

    def ce(ce_type: str, data: Any) -> tuple[bytes, list[tuple[str, bytes]]]:
        headers = [("ce_specversion", b"1.0"), ("ce_id", uuid.uuid4().hex.encode()),
                   ("ce_source", b"mallory"), ("ce_type", ce_type.encode()),
                   ("content-type", b"application/json")]  # fmt: skip
        return json.dumps(data).encode(), headers

    alias_set, deleted = "io.sparktrainer.model.alias-set.v1", "io.sparktrainer.model.deleted.v1"
    return [
        (None, []), (b"", []), (b"\x00\xff\xfe", []), (b"null", []), (b"[]", []),
        (b'{"name": ', []), (b"[" * 5000 + b"]" * 5000, []), (b'"' + b"x" * 200_000 + b'"', []),
        ce(alias_set, {}),
        ce(alias_set, {"name": NAME, "alias": "latest", "version": 1}),
        ce(alias_set, {"name": NAME, "alias": "champion", "version": -1}),
        ce(alias_set, {"name": NAME, "alias": "champion", "version": "3"}),
        ce(alias_set, {"name": "../x", "alias": "champion", "version": 1}),
        ce(alias_set, {"name": NAME, "alias": "champion", "version": 1, "extra": True}),
        ce(alias_set, {"name": NAME, "alias": "champion", "version": 1, "by": "x" * 300}),
        ce(deleted, {"model_id": "../../jobs"}),
        ce(deleted, {"model_id": None}),
        ce("io.sparktrainer.model.purged.v1", {"model_id": "m", "files_removed": -1}),
        ce("io.sparktrainer.model.registered.v1", {"model_id": "m", "register_as": "a@b"}),
        ce("io.sparktrainer.job.started.v1", {"job_id": "j"}),  # not this topic's event
        ce("io.evil.unknown.v1", {"x": 1}),
    ]  # fmt: skip


async def _every_consumer_of_the_registry_topics_survives_hostile_records(
    rs: RegistryStack, seen
) -> None:
    health = (await rs.api.get("/api/health")).json()["projector"]
    sweeps = rs.trainer.janitor.stats.sweeps
    for topic in (MODELS_CHANGES, MODELS_REGISTERED):
        for value, headers in hostile_records():
            await produce(rs.producer, topic, value, key=NAME.encode(), headers=headers)
    await set_alias(rs, "staging", 3, "after-the-junk")  # a good event after the bad ones
    r = await until(rs.api, f"/api/registered-models/{NAME}",
                    lambda r: "staging" in r.json()["aliases"])  # fmt: skip
    assert r.json()["aliases"]["champion"]["version"] == 2  # no hostile record moved it
    after = (await rs.api.get("/api/health")).json()["projector"]
    assert after["unreadable"] - health["unreadable"] == 2 * len(hostile_records())
    probe = job(FINETUNE, model_id=f"{NAME}@staging", epochs=1, num_classes=5)
    verdicts = await run_jobs(rs, probe)  # the validator's view read the junk too, and resolves
    [validated] = [e for e in verdicts[probe["job_id"]] if isinstance(e, JobValidated)]
    assert validated.config.model_id == seen["ids"][3]  # type: ignore[attr-defined]
    await until(rs.api, "/api/health", lambda _: rs.trainer.janitor.stats.sweeps > sweeps + 1)
    assert rs.directory.projector.stats.unreadable >= 2 * len(hostile_records())


async def test_the_registry_story_on_one_name(
    rs: RegistryStack, store: ObjectStore, tmp_path
) -> None:
    """The steps in order, in one test: each builds on what the ones before it left (so the
    story runs alone and in any test order); a failure names its step in the traceback."""
    seen: dict[str, Any] = {}  # what earlier steps found (model ids by version, ...)
    await _three_runs_with_one_name_are_versions_1_2_3(rs, seen)
    await _an_alias_moved_twice_keeps_its_history(rs, seen)
    await _a_finetune_from_the_champion_records_the_concrete_parent(rs, seen)
    await _a_download_through_the_api_matches_every_sha256(rs, seen)
    await _archived_models_leave_lists_and_stay_parents(rs, seen)
    await _deleted_models_are_tombstones_and_the_janitor_removes_their_files(rs, seen, store)
    await _a_rebuild_and_a_replay_give_the_same_registry(rs, seen, tmp_path)
    await _every_consumer_of_the_registry_topics_survives_hostile_records(rs, seen)
