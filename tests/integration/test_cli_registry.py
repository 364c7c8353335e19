"""The real commands (``python -m sparktrainer.cli.main ...``) against the real broker."""

from __future__ import annotations

import asyncio
import hashlib
import json
import os
import sys
from pathlib import Path
from typing import Any

import pytest

from sparktrainer.bus.kafka import ensure_topics
from sparktrainer.contracts.events import CancelRequested, JobFailed, JobRejected
from sparktrainer.contracts.topics import JOBS_CONTROL, JOBS_SUBMITTED
from sparktrainer.registry import store
from sparktrainer.registry.models import get_model
from tests.integration.registry_kit import (
    GUIDE_MLP,
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
ROOT = Path(__file__).resolve().parents[2]


@pytest.fixture(scope="module", autouse=True)
async def topics(stack) -> None:
    await ensure_topics(stack)  # the taps read topics a fresh broker may not have yet


@pytest.fixture(scope="module")
def env(stack, tmp_path_factory) -> dict[str, str]:
    home = tmp_path_factory.mktemp("cli-home")
    out = {k: v for k, v in os.environ.items() if not k.startswith("SPARKTRAINER_")}
    out.update(
        SPARKTRAINER_KAFKA_BOOTSTRAP_SERVERS=stack.kafka_bootstrap_servers,
        SPARKTRAINER_HOME=str(home),
        SPARKTRAINER_REGISTRY_DB=str(home / "registry.sqlite3"),
        PYTHONPATH=str(ROOT),
        COLUMNS="200",
    )
    if stack.s3_endpoint:
        out["SPARKTRAINER_S3_ENDPOINT"] = stack.s3_endpoint
        for name in ("s3_access_key", "s3_secret_key"):
            secret = getattr(stack, name)
            if secret is not None:
                out[f"SPARKTRAINER_{name.upper()}"] = secret.get_secret_value()
    return out


async def cli(env: dict[str, str], *args: str, timeout_s: float = 60) -> tuple[int, str, str]:
    """Run one command; returns (exit code, stdout, stderr)."""
    proc = await asyncio.create_subprocess_exec(
        sys.executable,
        "-m",
        "sparktrainer.cli.main",
        *args,
        cwd=ROOT,
        env=env,
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.PIPE,
    )
    out, err = await asyncio.wait_for(proc.communicate(), timeout_s)
    assert proc.returncode is not None
    return proc.returncode, out.decode(), err.decode()


def lines(stdout: str) -> list[dict[str, Any]]:
    return [json.loads(line) for line in stdout.splitlines() if line.strip()]


def job_file(tmp_path: Path, body: Any, name: str = "job.json") -> str:
    path = tmp_path / name
    path.write_text(body if isinstance(body, str) else json.dumps(body))
    return str(path)


async def test_validate_exit_codes(env, tmp_path) -> None:
    rc, out, _ = await cli(env, "validate", job_file(tmp_path, GUIDE_MLP))
    assert (rc, out.strip()) == (0, "valid")
    bad = {**GUIDE_MLP, "config": {**GUIDE_MLP["config"], "epochs": 0}}
    rc, out, _ = await cli(env, "validate", job_file(tmp_path, bad), "--json")
    verdict = json.loads(out)
    assert rc == 1 and verdict["valid"] is False and any("epochs" in e for e in verdict["errors"])
    rc, _, err = await cli(env, "validate", str(tmp_path / "missing.json"))
    assert rc == 2 and "Cannot read" in err
    rc, _, err = await cli(env, "validate", job_file(tmp_path, "{nope", "broken.json"))
    assert rc == 2 and "not valid JSON" in err


async def test_submit_publishes_and_prints_the_job_id(stack, env, tmp_path) -> None:
    async with Tap(stack, JOBS_SUBMITTED) as tap:
        rc, out, err = await cli(env, "submit", job_file(tmp_path, GUIDE_MLP), "--json")
        assert rc == 0, err
        job_id = lines(out)[0]["job_id"]
        await tap.wait_for(lambda e: getattr(e, "job_id", None) == job_id)
    assert any(r.key == job_id.encode() for r in tap.records)
    rc, _, err = await cli(env, "submit", job_file(tmp_path, {"type": 1}, "bad.json"))
    assert rc == 2 and "not a job" in err


async def _drive(stack, ready: asyncio.Event, job_id: str, *events: Any) -> None:
    """Play the validator and the trainer once the submission is on the log."""
    async with Tap(stack, JOBS_SUBMITTED) as tap:
        ready.set()  # the tap's end is fixed: the submission cannot slip past it
        await tap.wait_for(lambda e: getattr(e, "job_id", None) == job_id, timeout_s=60)
    await publish(stack, *events)


async def _submit_and_wait(stack, env, tmp_path, job_id: str, *events: Any):
    path = job_file(tmp_path, {**GUIDE_MLP, "job_id": job_id})
    ready = asyncio.Event()
    driver = asyncio.create_task(_drive(stack, ready, job_id, *events))
    await asyncio.wait_for(ready.wait(), 30)
    result = await cli(env, "submit", path, "--wait", "--json", "--timeout", "60")
    await driver
    return result


async def test_submit_wait_follows_the_job_to_completed(stack, env, tmp_path) -> None:
    job_id = unique("wait")
    story = (
        validated(job_id),
        started(job_id),
        progress(job_id, 1),
        progress(job_id, 2),
        completed(job_id),
    )
    rc, out, err = await _submit_and_wait(stack, env, tmp_path, job_id, *story)
    assert rc == 0, err
    kinds = [line["event"] for line in lines(out)]
    assert kinds == [
        "submitted",
        "job.validated",
        "job.started",
        "job.progress",
        "job.progress",
        "job.completed",
        "verdict",
    ]
    assert lines(out)[-1] == {
        "event": "verdict",
        "job_id": job_id,
        "status": "completed",
        "note": None,
    }


@pytest.mark.parametrize("end", ["rejected", "failed"])
async def test_submit_wait_exits_1_when_the_job_does_not_complete(
    stack, env, tmp_path, end
) -> None:
    job_id = unique(end)
    story = (
        [JobRejected(job_id=job_id, errors=["epochs must be a positive number"])]
        if end == "rejected"
        else [
            validated(job_id),
            started(job_id),
            JobFailed(job_id=job_id, reason="NaN loss", error_type="TrainingError"),
        ]
    )
    rc, out, _ = await _submit_and_wait(stack, env, tmp_path, job_id, *story)
    assert rc == 1 and lines(out)[-1]["status"] == end


async def test_watch_replays_a_finished_job_and_times_out_on_an_unknown_one(stack, env) -> None:
    job_id = unique("watched")
    await publish(stack, validated(job_id), started(job_id), progress(job_id, 1), completed(job_id))
    rc, out, err = await cli(env, "jobs", "watch", job_id, "--json")
    assert rc == 0, err
    assert [line["event"] for line in lines(out)][-2:] == ["job.completed", "verdict"]
    rc, out, err = await cli(env, "jobs", "watch", job_id)  # the rich view
    assert rc == 0 and f"completed {job_id}: model {job_id}" in out
    rc, _, err = await cli(env, "jobs", "watch", unique("nobody"), "--timeout", "1")
    assert rc == 2 and "No job 'nobody" in err  # refused at once, not waited on


async def test_cancel_publishes_a_request(stack, env) -> None:
    job_id = unique("cancel")
    async with Tap(stack, JOBS_CONTROL) as tap:
        rc, out, err = await cli(env, "jobs", "cancel", job_id, "--reason", "stop it")
        assert rc == 1 and "is not in the registry: the request is kept 7 days" in out, err
        [event] = await tap.wait_for(lambda e: getattr(e, "job_id", None) == job_id)
    assert isinstance(event, CancelRequested) and event.reason == "stop it"
    rc, _, err = await cli(env, "jobs", "cancel", "../x")
    assert rc == 2 and "not a valid id" in err


async def test_models_and_jobs_from_the_read_model(stack, env) -> None:
    tag = unique("tag")
    root, child = unique("root"), unique("child")
    job_id = unique("job")
    await publish(
        stack,
        model(root, tags=[tag]),
        model(child, base=root, tags=[tag]),
        validated(job_id),
        started(job_id),
        progress(job_id, 1),
    )
    rc, out, err = await cli(env, "models", "list", "--tag", tag, "--json")
    assert rc == 0, err
    assert [m["model_id"] for m in json.loads(out)["models"]] == [child, root]
    rc, out, _ = await cli(env, "models", "list", "--tag", tag, "--no-sync")
    assert rc == 0 and child in out and "2 of 2 models" in out
    rc, out, _ = await cli(env, "models", "show", child, "--json", "--no-sync")
    assert rc == 0 and json.loads(out)["base_model_id"] == root
    rc, out, _ = await cli(env, "models", "lineage", child, "--no-sync")
    assert rc == 0 and out.index(root) < out.index(child)
    rc, out, _ = await cli(env, "models", "lineage", child, "--json", "--no-sync")
    assert [a["model_id"] for a in json.loads(out)["ancestors"]] == [root]
    rc, _, err = await cli(env, "models", "show", unique("nope"), "--no-sync")
    assert rc == 2 and "No model" in err
    rc, out, _ = await cli(env, "jobs", "show", job_id, "--json", "--no-sync")
    assert rc == 0 and json.loads(out)["status"] == "running"
    rc, out, _ = await cli(
        env, "jobs", "list", "--status", "running", "--json", "--limit", "1000", "--no-sync"
    )
    assert job_id in [j["job_id"] for j in json.loads(out)["jobs"]]


async def test_replay_dry_run_and_bad_arguments(stack, env) -> None:
    ids = [unique("m") for _ in range(2)]
    await publish(stack, *(model(i) for i in ids))
    args = ["replay", "sparktrainer.models.registered", "--dry-run", "--json"]
    rc, out, err = await cli(env, *args, *(a for i in ids for a in ("--key", i)))
    assert rc == 0, err
    *shown, summary = lines(out)
    assert sorted(s["would_send"]["key"] for s in shown) == sorted(ids)
    assert (summary["matched"], summary["sent"], summary["dry_run"]) == (2, 0, True)
    rc, _, err = await cli(env, "replay", "sparktrainer.models.registered", "--since", "yesterday")
    assert rc == 2 and "not a time" in err
    rc, _, err = await cli(env, "replay", "sparktrainer.models.registered", "--from-offset", "a:b")
    assert rc == 2 and "not an offset" in err


async def test_python_m_replay_and_unreachable_kafka(env, tmp_path) -> None:
    proc = await asyncio.create_subprocess_exec(
        sys.executable,
        "-m",
        "sparktrainer.replay",
        "--help",
        cwd=ROOT,
        env=env,
        stdout=asyncio.subprocess.PIPE,
    )
    out, _ = await proc.communicate()
    assert proc.returncode == 0 and b"--only-rejected" in out
    down = {**env, "SPARKTRAINER_KAFKA_BOOTSTRAP_SERVERS": "127.0.0.1:1"}
    rc, _, err = await cli(down, "submit", job_file(tmp_path, GUIDE_MLP))
    assert rc == 3 and "KafkaConnectionError" in err


async def test_projector_process_catches_up_and_stops_on_sigterm(stack, env, tmp_path) -> None:
    db = tmp_path / "replica.db"
    first, second = unique("m"), unique("m")
    await publish(stack, model(first))
    args = [sys.executable, "-m", "consumers.registry_projector", "--db", str(db)]
    once = await asyncio.create_subprocess_exec(
        *args, "--once", cwd=ROOT, env=env, stderr=asyncio.subprocess.PIPE
    )
    _, err = await asyncio.wait_for(once.communicate(), 60)
    assert once.returncode == 0 and b"READY" in err and b"consumer_ready" in err
    assert get_model(store.connect(db), first) is not None
    proc = await asyncio.create_subprocess_exec(
        *args, cwd=ROOT, env=env, stderr=asyncio.subprocess.PIPE
    )
    assert proc.stderr is not None
    while b"READY" not in await asyncio.wait_for(proc.stderr.readline(), 60):
        pass
    await publish(stack, model(second))
    conn = store.connect(db)
    for _ in range(200):
        if get_model(conn, second) is not None:
            break
        await asyncio.sleep(0.05)
    assert get_model(conn, second) is not None
    proc.terminate()
    assert await asyncio.wait_for(proc.wait(), 30) == 0


async def _uploaded_model(settings, model_id: str, name: str, files: dict[str, bytes], **kw: Any):
    """A model whose files really are in S3 (with their sha256 in its registration)."""
    from sparktrainer.contracts.events import Artifact
    from sparktrainer.storage.s3 import ObjectStore

    s3 = ObjectStore.from_settings(settings)
    for path, data in files.items():
        s3.put_bytes(f"models/{model_id}/{path}", data)
    s3.put_json(f"models/{model_id}/metadata.json", {"model_id": model_id})
    sha = kw.pop("sha", {})
    digest = {p: sha.get(p, hashlib.sha256(d).hexdigest()) for p, d in files.items()}
    artifacts = [Artifact(path=p, size_bytes=len(d), sha256=digest[p]) for p, d in files.items()]
    await publish(settings, model(model_id, register_as=name, artifacts=artifacts, **kw))


async def test_models_alias_list_history_and_download(stack, env, tmp_path) -> None:
    name = unique("cli-name")
    ids = [unique("v1"), unique("v2")]
    files = {"model.pth": b"weights" * 1000, "sub/config.json": b'{"builder": "mlp"}'}
    for model_id in ids:
        await _uploaded_model(stack, model_id, name, files)
    rc, out, err = await cli(env, "models", "alias", f"{name}@champion", "1", "--actor", "alice")
    assert rc == 0, err
    rc, out, err = await cli(env, "models", "alias", f"{name}@champion", "2", "--json")
    assert rc == 0 and lines(out)[0]["version"] == 2, err
    rc, out, err = await cli(env, "models", "history", f"{name}@champion", "--json")
    moves = lines(out)[0]["history"]
    assert [(m["previous_version"], m["version"]) for m in moves] == [(None, 1), (1, 2)]
    assert moves[0]["by"] == "default (alice)"  # SPARKTRAINER_TENANT (unset), the actor
    rc, out, _ = await cli(env, "models", "list", "--name", name, "--alias", "champion", "--json")
    assert [m["model_id"] for m in lines(out)[0]["models"]] == [ids[1]]
    rc, out, err = await cli(env, "models", "download", f"{name}@champion", str(tmp_path / "d"))
    assert rc == 0, err
    for path, data in files.items():
        assert (tmp_path / "d" / path).read_bytes() == data
    rc, _, err = await cli(env, "models", "alias", f"{name}@latest", "1")
    assert rc == 2 and "reserved" in err


async def test_download_refuses_files_whose_sha256_does_not_match(stack, env, tmp_path) -> None:
    model_id = unique("tampered")
    files = {"model.pth": b"real weights", "config.json": b"{}"}
    await _uploaded_model(stack, model_id, unique("t"), files, sha={"model.pth": "0" * 64})
    rc, out, err = await cli(env, "models", "download", model_id, str(tmp_path / "t"), "--json")
    assert rc == 1 and "did not match" in err
    assert lines(out)[0]["sha256_mismatch"] == ["model.pth"]
    assert not (tmp_path / "t" / "model.pth").exists() and (tmp_path / "t" / "config.json").exists()
