"""The registry tests' stack: a validator with its registry view, a trainer (and its janitor),
the API with its in-process projector and, when asked, a sweep controller, all in this process
on the session's real broker and S3."""

from __future__ import annotations

import asyncio
import contextlib
import copy
import uuid
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
from aiokafka import AIOKafkaProducer
from pydantic import SecretStr

from sparktrainer.api.app import create_app
from sparktrainer.bus.runtime import ConsumerRuntime
from sparktrainer.contracts.events import JobCancelled, JobCompleted, JobFailed, JobRejected
from sparktrainer.contracts.topics import (
    JOBS_CONTROL,
    JOBS_LIFECYCLE,
    JOBS_REJECTED,
    JOBS_SUBMITTED,
    JOBS_VALIDATED,
    MODELS_REGISTERED,
)
from sparktrainer.registry.directory import RegistryDirectory
from sparktrainer.services.trainer import TrainerService
from sparktrainer.services.validator import build_runtime, validator_topics
from sparktrainer.settings import Settings
from sparktrainer.storage.s3 import ObjectStore
from sparktrainer.sweeps.controller import SweepController
from tests import guide
from tests.integration.registry_kit import JSON
from tests.integration.tap import Tap, produce, producer_for, start_group_at_end

TOKEN = "registry-test-token"
AUTH = {"Authorization": f"Bearer {TOKEN}"}
STORY = (JOBS_VALIDATED, JOBS_REJECTED, JOBS_LIFECYCLE, MODELS_REGISTERED)


@dataclass
class RegistryStack:
    """What the tests drive: the settings, an API client, a producer, the services."""

    settings: Settings
    api: httpx.AsyncClient
    producer: AIOKafkaProducer
    validator: ConsumerRuntime
    directory: RegistryDirectory
    trainer: TrainerService
    controller: SweepController | None = None


@contextlib.asynccontextmanager
async def registry_stack(
    stack: Settings, home: Path, *, sweeps: bool = False, **overrides: Any
) -> AsyncIterator[RegistryStack]:
    """Start the services on fresh groups (they see only what comes next); stop them after.

    ``sweeps`` adds a sweep controller; ``overrides`` are settings (a tenants file, a grace).
    """
    suffix = uuid.uuid4().hex[:8]
    settings = stack.model_copy(
        update={"home": home, "api_token": SecretStr(TOKEN), "model_delete_grace_s": 3600.0,
                "janitor_interval_s": 0.3, "api_open_reads": True,  # downloads still need it
                **overrides}
    )  # fmt: skip
    groups = {n: f"registry-{n}-{suffix}" for n in ("validator", "trainer", "control")}
    await start_group_at_end(settings, groups["validator"], *validator_topics(settings))
    await start_group_at_end(settings, groups["trainer"], JOBS_VALIDATED)
    await start_group_at_end(settings, groups["control"], JOBS_CONTROL)
    directory = RegistryDirectory(settings)
    await directory.start()
    store = ObjectStore.from_settings(settings)
    validator = build_runtime(settings, store, groups["validator"], directory)
    trainer = TrainerService(
        settings, group_id=groups["trainer"], control_group_id=groups["control"]
    )
    app = create_app(settings, with_projector=True, db_path=home / "api-registry.sqlite3")
    tasks = [asyncio.create_task(validator.run()), asyncio.create_task(trainer.run())]
    controller = SweepController(settings, store) if sweeps else None
    if controller is not None:
        tasks.append(asyncio.create_task(controller.run()))
    producer = producer_for(settings)
    await producer.start()
    try:
        await validator.wait_positioned()
        await trainer.wait_positioned(300)
        if controller is not None:
            await controller.wait_positioned(120)
        async with app.router.lifespan_context(app):
            transport = httpx.ASGITransport(app=app)
            async with httpx.AsyncClient(
                transport=transport, base_url="http://localhost", headers=JSON
            ) as api:
                await until(api, "/api/health", lambda r: r.json()["projector"]["ready"])
                yield RegistryStack(
                    settings, api, producer, validator, directory, trainer, controller
                )
    finally:
        await producer.stop()
        validator.stop()
        trainer.stop()
        if controller is not None:
            controller.stop()
        await asyncio.gather(*tasks)
        await directory.close()


async def until(
    api: httpx.AsyncClient,
    path: str,
    check: Callable[[httpx.Response], bool],
    timeout_s: float = 60.0,
    **params: Any,
) -> httpx.Response:
    """GET ``path`` until ``check`` holds for the answer (fails the test at the deadline)."""
    deadline = asyncio.get_running_loop().time() + timeout_s
    while True:
        r = await api.get(path, params=params, headers=AUTH)
        if check(r):
            return r
        if asyncio.get_running_loop().time() > deadline:
            raise AssertionError(f"{path}: still {r.status_code} {r.text[:400]} after {timeout_s}s")
        await asyncio.sleep(0.2)


def job(step: str, register_as: str | None = None, **config: Any) -> dict[str, Any]:
    """The guide's job, small and quick, with a fresh id (and a name to register under)."""
    out = copy.deepcopy(guide.by_name(step))
    out["job_id"] = f"reg-{uuid.uuid4().hex[:10]}"
    out["config"].update({"epochs": 1, "data": {"num_samples": 256}, **config})
    if register_as:
        out["register_as"] = register_as
    return out


END = (JobCompleted, JobFailed, JobCancelled, JobRejected)


def ended(job_id: str) -> Callable[[Any], bool]:
    return lambda e: getattr(e, "job_id", None) == job_id and isinstance(e, END)


def end_of(events: list[Any]) -> Any:
    """The event that ended the job (events of other topics may arrive after it)."""
    return next(e for e in events if isinstance(e, END))


async def run_jobs(rs: RegistryStack, *jobs: dict[str, Any]) -> dict[str, list[Any]]:
    """Submit jobs and wait for each one's end; every event of each, by job id."""
    async with Tap(rs.settings, *STORY) as tap:
        for j in jobs:
            await produce(rs.producer, JOBS_SUBMITTED, j, key=j["job_id"].encode())
        for j in jobs:
            await tap.wait_for(ended(j["job_id"]), 1, timeout_s=240)
        events = list(tap.events)
    return {j["job_id"]: [e for e in events if getattr(e, "job_id", None) == j["job_id"]]
            for j in jobs}  # fmt: skip
