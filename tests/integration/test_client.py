"""sparktrainer.Client on the real API: the README's example run as written, then the errors.

One uvicorn server on a loopback port in this loop, in front of a validator, a warm trainer
and a projector on the session's embedded stack; one tiny job trains (256 samples, 1 epoch).
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import re
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import pytest
import uvicorn
from pydantic import SecretStr

from sparktrainer.api.app import create_app
from sparktrainer.client import AsyncClient
from sparktrainer.client.errors import (
    Conflict,
    JobNotCompleted,
    NotFound,
    Refused,
    Unauthorized,
    Unreachable,
)
from sparktrainer.contracts.events import JobSubmitted
from tests.integration.services_kit import running_services

README = Path(__file__).resolve().parents[2] / "README.md"
TOKEN = "client-test-token"


def readme_example() -> str:
    """The Python block of the README's 'Python client' section."""
    section = README.read_text().split("## Python client", 1)[1]
    return re.search(r"```python\n(.*?)```", section, re.S).group(1)  # type: ignore[union-attr]


@contextlib.asynccontextmanager
async def served(settings: Any, home: Path) -> AsyncIterator[str]:
    """The API with its projector, on a free loopback port; its URL."""
    app = create_app(settings, with_projector=True, db_path=home / "api.sqlite3")
    server = uvicorn.Server(uvicorn.Config(app, host="127.0.0.1", port=0, log_level="warning"))
    task = asyncio.create_task(server.serve())
    try:
        for _ in range(600):  # bounded: 60 s for the lifespan (projector positioned)
            if server.started or task.done():
                break
            await asyncio.sleep(0.1)
        assert server.started, "the API did not start"
        port = server.servers[0].sockets[0].getsockname()[1]
        yield f"http://127.0.0.1:{port}"
    finally:
        server.should_exit = True
        await task


@pytest.fixture
async def api(settings, tmp_path, unique, monkeypatch) -> AsyncIterator[str]:
    settings = settings.model_copy(update={"api_token": SecretStr(TOKEN)})
    async with running_services(settings, unique("client"), tmp_path / "services.sqlite3"):
        async with served(settings, tmp_path) as url:
            monkeypatch.setenv("SPARKTRAINER_API_URL", url)
            monkeypatch.setenv("SPARKTRAINER_API_TOKEN", TOKEN)
            yield url


async def test_the_readme_example_runs_and_errors_are_typed(api, settings, tmp_path) -> None:
    scope: dict[str, Any] = {}
    await asyncio.to_thread(exec, readme_example(), scope)  # the sync Client, as written
    done, model, curves = scope["done"], scope["model"], scope["curves"]
    assert done.status == "completed" and done.model_id == scope["submitted"].job_id
    assert [s.status for s in scope["seen"]][-1] == "completed"
    assert model.model_id == done.model_id and model.artifacts
    assert curves["series"] and all(s["values"] for s in curves["series"].values())
    async with AsyncClient() as client:
        listed = await client.jobs()
        assert done.job_id in [j.job_id for j in listed.jobs()]
        assert done.model_id in [m.model_id for m in (await client.models()).models()]
        assert (await client.job(done.job_id[:8])).job_id == done.job_id  # a prefix names it
        typed = JobSubmitted.model_validate(scope["job"])
        assert (await client.validate(typed)).valid
        files = await client.download(done.model_id, tmp_path / "model")
        assert any(p.name == "metadata.json" for p in files)
        await _a_failed_jobs_log(client, scope["job"], settings.s3_bucket)
        await _refusals(client, done.job_id, tmp_path)
    with pytest.raises(Unauthorized):
        await AsyncClient(api, token="wrong").jobs()
    with pytest.raises(Unreachable):
        await AsyncClient("http://127.0.0.1:9").jobs()


async def _a_failed_jobs_log(client: AsyncClient, job: dict[str, Any], bucket: str) -> None:
    """A job whose data is missing fails; its log holds the worker's traceback naming it."""
    missing = f"s3://{bucket}/no/such/client-data.npz"
    config = {**job["config"], "epochs": 1, "data": {**job["config"]["data"], "source": missing}}
    submitted = await client.submit({**job, "config": config})
    with pytest.raises(JobNotCompleted) as failed:
        await client.wait(submitted.job_id, timeout_s=120)
    assert failed.value.job.status == "failed" and failed.value.job.cause == "data"
    log = await client.logs(submitted.job_id[:8])  # the latest attempt; a prefix names the job
    assert "Traceback" in log and "no/such/client-data.npz" in log, log[-2000:]
    assert await client.logs(submitted.job_id, attempt=1) == log
    with pytest.raises(NotFound, match="attempts \\[1\\]"):
        await client.logs(submitted.job_id, attempt=2)


async def _refusals(client: AsyncClient, ended: str, tmp_path: Path) -> None:
    with pytest.raises(Conflict, match="already ended"):
        await client.cancel(ended)
    with pytest.raises(NotFound):
        await client.job("no-such-job")
    with pytest.raises(Refused) as e:
        await client.submit({"name": "x", "type": "train"})
    assert e.value.status == 422 and e.value.errors
    bad = tmp_path / "bad.json"  # a guide-shaped file the validator rejects
    bad.write_text(json.dumps({"name": "bad", "type": "train", "framework": "pytorch",
                               "config": {"architecture": "custom", "epochs": -1}}))  # fmt: skip
    submitted = await client.submit(bad)
    with pytest.raises(JobNotCompleted) as ended_badly:
        await client.wait(submitted.job_id, timeout_s=60)
    assert ended_badly.value.job.status == "rejected"
