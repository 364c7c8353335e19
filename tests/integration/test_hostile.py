"""The hostile-input suite: hypothesis-generated records on every topic while a normal job runs.

The validator, the trainer and the registry projector run as processes, as deployed, and so
does the API with its own projector. While a normal job trains, a few hundred drawn records
(``hostile_kit``) go to every topic. Afterwards: every process is alive and said what it
skipped, the normal job completed and is listed, every GET of the API answers 200 with nothing
that is not JSON (no NaN), every drawn submission got exactly one answer within the message
limit, an event on the wrong topic changed nothing, and the CLI follower and replay read it all.
"""

from __future__ import annotations

import asyncio
import json
import time
import urllib.error
import urllib.request
from collections import defaultdict
from dataclasses import replace
from pathlib import Path
from typing import Any

import pytest

from sparktrainer.bus.kafka import make_producer
from sparktrainer.client.follow import JobFollower
from sparktrainer.contracts import topics as t
from sparktrainer.contracts.envelope import decode, encode, header_map
from sparktrainer.contracts.events import JobCompleted, JobFailed, JobRejected, JobValidated
from sparktrainer.embedded.processes import pick_ports
from sparktrainer.replay.engine import rejected_sources, replay
from sparktrainer.replay.spec import ReplaySpec
from sparktrainer.services.validator import validator_topics
from sparktrainer.settings import Settings
from tests.integration.faults_kit import log, log_ends, mlp_job, read_log
from tests.integration.hostile_kit import (
    UNTRAINABLE_EPOCHS,
    Process,
    hostile_records,
    service_env,
    start,
    unique_id,
    wait_ready,
)
from tests.integration.registry_kit import model
from tests.integration.tap import start_group_at_end

pytestmark = [pytest.mark.integration]
RECORDS = 200
_NO_PROXY = urllib.request.build_opener(urllib.request.ProxyHandler({}))


def _get(url: str) -> tuple[int, str]:
    try:
        with _NO_PROXY.open(url, timeout=30) as response:
            return response.status, response.read().decode()
    except urllib.error.HTTPError as e:
        return e.code, e.read().decode()


def _post(url: str, body: Any) -> tuple[int, str]:
    request = urllib.request.Request(url, json.dumps(body).encode(), method="POST")
    request.add_header("content-type", "application/json")
    try:
        with _NO_PROXY.open(request, timeout=30) as response:
            return response.status, response.read().decode()
    except urllib.error.HTTPError as e:
        return e.code, e.read().decode()


async def _until(what: str, check: Any, timeout_s: float) -> Any:
    deadline = time.monotonic() + timeout_s
    while True:
        found = await asyncio.to_thread(check)
        if found:
            return found
        assert time.monotonic() < deadline, f"{what}: not within {timeout_s} s"
        await asyncio.sleep(0.5)


async def _start_services(settings: Settings, tmp_path: Path, unique: Any) -> dict[str, Process]:
    groups = {name: unique(f"hostile-{name}") for name in ("validator", "trainer")}
    await start_group_at_end(settings, groups["validator"], *validator_topics(settings))
    await start_group_at_end(settings, groups["trainer"], t.JOBS_VALIDATED)
    await start_group_at_end(settings, f"{groups['trainer']}-control", t.JOBS_CONTROL)
    port = pick_ports(["api"])["api"]
    env = service_env()
    procs = {
        "validator": start("validator", ["-m", "consumers.validator", "--group-id",
                           groups["validator"]], env, tmp_path),
        "trainer": start("trainer", ["-m", "consumers.trainer", "--group-id", groups["trainer"]],
                         env, tmp_path),
        "projector": start("projector", ["-m", "consumers.registry_projector", "--db",
                           str(tmp_path / "projector.sqlite3")], env, tmp_path),
        "api": start("api", ["-m", "sparktrainer.cli.main", "serve", "api", "--with-projector",
                     "--port", str(port), "--db", str(tmp_path / "api.sqlite3")], env, tmp_path),
    }  # fmt: skip
    procs["api"].url = f"http://127.0.0.1:{port}"  # type: ignore[attr-defined]
    await asyncio.to_thread(wait_ready, [procs[n] for n in ("validator", "trainer")], "READY")
    await asyncio.to_thread(wait_ready, [procs["projector"]], "READY")
    await _until("the API", lambda: _api_ready(procs["api"]), 120)
    return procs


def _api_ready(api: Process) -> bool:
    assert api.alive(), api.said()[-2000:]
    try:
        status, text = _get(api.url + "/api/health")  # type: ignore[attr-defined]
    except OSError:
        return False
    return status == 200 and json.loads(text)["projector"]["ready"]


async def _flood(settings: Settings, normal_id: str) -> dict[tuple[int, int], Any]:
    """Send the drawn records (and the deterministic ones); where each submission landed."""
    drawn = hostile_records(RECORDS, normal_id)
    wrong_topic, nan_model = model(unique_id("wrong-topic")), model(unique_id("nan-model"))
    nan_value = encode(nan_model, "hostile").value.replace(b'"input_size":4', b'"input_size":NaN')
    refused_job = mlp_job("refused", epochs=UNTRAINABLE_EPOCHS)
    refused = JobValidated.model_validate(
        {**refused_job, "config_kind": "pytorch.mlp", "config": refused_job["config"]}
    )
    extra = [
        (t.JOBS_LIFECYCLE, encode(wrong_topic, "hostile")),  # a registration on the wrong topic
        (t.MODELS_REGISTERED, replace(encode(nan_model, "hostile"), value=nan_value)),
        (t.JOBS_VALIDATED, encode(refused, "hostile")),  # beyond a cap, straight to the trainer
    ]
    producer = make_producer(settings)
    await producer.start()
    landed: dict[tuple[int, int], Any] = {}
    try:
        for r in drawn:
            meta = await producer.send_and_wait(
                r.topic, r.value, key=r.key, headers=r.headers, timestamp_ms=r.timestamp_ms
            )
            if r.topic == t.JOBS_SUBMITTED:
                landed[(meta.partition, meta.offset)] = r
        for topic, record in extra:
            await producer.send_and_wait(topic, record.value, key=record.key,
                                         headers=record.headers)  # fmt: skip
    finally:
        await producer.stop()
    per_topic = defaultdict(int, {t: sum(r.topic == t for r in drawn) for t in t.ALL_TOPICS})
    log("hostile records sent", dict(per_topic), "submissions:", len(landed))
    return {"landed": landed, "wrong": wrong_topic.model_id, "nan": nan_model.model_id,
            "refused": refused.job_id}  # type: ignore[return-value]  # fmt: skip


def _answers(records: list[Any], landed: dict[tuple[int, int], Any]) -> dict[Any, set[str]]:
    """The distinct answers (by CloudEvents id) to each drawn submission, and their sizes."""
    found: dict[Any, set[str]] = defaultdict(set)
    for r in records:
        if r.topic not in (t.JOBS_VALIDATED, t.JOBS_REJECTED):
            continue
        try:
            event = decode(r.value, r.headers)
        except ValueError:
            continue  # a drawn record on these topics, not an answer
        source = getattr(event, "source", None)
        at = (source.partition, source.offset) if source else None
        if source is not None and source.topic == t.JOBS_SUBMITTED and at in landed:
            found[at].add(header_map(r.headers).get("ce_id", ""))
            size = len(r.value) + sum(len(k) + len(v or b"") for k, v in r.headers)
            assert size <= Settings().limits.message_bytes, (at, size)
    return found


def _every_get(base: str) -> int:
    """GET every listing page and every job and model they list; all 200, all strict JSON."""
    count = 0

    def get(path: str) -> Any:
        nonlocal count
        status, text = _get(base + path)
        count += 1
        assert status == 200, (path, status, text[:500])
        return json.loads(text, parse_constant=lambda c: pytest.fail(f"{path} served {c}"))

    get("/api/health")
    for resource, key in (("jobs", "job_id"), ("models", "model_id")):
        offset, total = 0, 1
        while offset < total:
            page = get(f"/api/{resource}?limit=1000&offset={offset}")
            total, offset = page["total"], offset + 1000
            for item in page[resource]:
                get(f"/api/{resource}/{item[key]}")
                if resource == "models":
                    get(f"/api/models/{item[key]}/lineage")
    return count


async def test_hostile_records_on_every_topic_while_a_job_runs(
    settings: Settings, tmp_path: Path, unique: Any
) -> None:
    started = time.monotonic()
    mark = await log_ends(settings, t.ALL_TOPICS)
    procs = await _start_services(settings, tmp_path, unique)
    api = procs["api"].url  # type: ignore[attr-defined]
    try:
        normal = mlp_job("normal", epochs=4)
        status, text = await asyncio.to_thread(_post, api + "/api/jobs", normal)
        assert status == 202, text
        sent = await _flood(settings, normal["job_id"])
        landed = sent["landed"]

        def done() -> Any:
            status, text = _get(f"{api}/api/jobs/{normal['job_id']}")
            return status == 200 and json.loads(text)["status"] in ("completed", "failed")

        await _until("the normal job's end", done, 240)
        job = json.loads(_get(f"{api}/api/jobs/{normal['job_id']}")[1])
        assert job["status"] == "completed", job
        assert _get(f"{api}/api/models/{normal['job_id']}")[0] == 200

        async def answered() -> Any:
            found = _answers(await read_log(settings, mark, 120), landed)
            return found if len(found) == len(landed) else None

        deadline = time.monotonic() + 120
        while (found := await answered()) is None:
            assert time.monotonic() < deadline, "not every drawn submission was answered"
            await asyncio.sleep(1.0)
        twice = {at: ids for at, ids in found.items() if len(ids) != 1}
        assert not twice, f"answered more than once: {twice}"

        assert _get(f"{api}/api/models/{sent['wrong']}")[0] == 404  # lifecycle is no registry
        assert _get(f"{api}/api/models/{sent['nan']}")[0] == 404  # NaN is not JSON: skipped
        refused = await _until("the refused job", lambda: _ended(api, sent["refused"]), 60)
        assert refused["status"] == "failed" and "refused" in refused["reason"], refused
        assert refused["device"] is None  # it never started
        gets = await asyncio.to_thread(_every_get, api)
        await _follow_and_replay(settings, normal["job_id"], mark)
        dead = [p.name for p in procs.values() if not p.alive()]
        assert not dead, {n: procs[n].said()[-3000:] for n in dead}
        skipped = {n: p.said().count("record_skipped") for n, p in procs.items()}
        assert skipped["trainer"] > 0 and skipped["projector"] > 0, skipped
    finally:
        for p in procs.values():
            await asyncio.to_thread(p.stop)
    log(f"{RECORDS} drawn records ({len(landed)} submissions, all answered once), {gets} GETs "
        f"all 200, skipped: {skipped}, {time.monotonic() - started:.0f} s in all")  # fmt: skip


def _ended(api: str, job_id: str) -> Any:
    status, text = _get(f"{api}/api/jobs/{job_id}")
    row = json.loads(text) if status == 200 else {}
    return row if row.get("status") in ("completed", "failed", "cancelled") else None


async def _follow_and_replay(settings: Settings, job_id: str, mark: Any) -> None:
    """The CLI follower reads the normal job to its end through the hostile records; replay
    scans every topic's slice with filters that read every record."""
    async with JobFollower(settings, job_id) as follower:
        events = [e async for e in follower.events(timeout_s=60)]
    assert isinstance(events[-1], JobCompleted), events
    # A drawn record keyed or named as the normal job is rejected under its id (the door's
    # rule); the follower, once it has seen the job validated, does not take it for its end.
    assert not any(isinstance(e, JobFailed | JobRejected) for e in events), events
    for topic in t.ALL_TOPICS:
        since = {tp: o for tp, o in mark.items() if tp.topic == topic}
        spec = ReplaySpec(source=topic, dry_run=True, job_ids=(job_id,),
                          types=("io.sparktrainer.job.completed.v1",),
                          from_offset={tp.partition: o for tp, o in since.items()})  # fmt: skip
        await replay(settings, spec, on_record=lambda picked, to=topic: picked.as_dict(to))
    await rejected_sources(settings, t.JOBS_SUBMITTED)
