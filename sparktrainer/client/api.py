"""``sparktrainer.Client`` and ``AsyncClient``: submit, wait, follow, cancel, jobs, models.

Both speak to the HTTP API (``sparktrainer serve api``): an address and a token, nothing else,
so a notebook or a pipeline needs no Kafka or S3 credentials. ``Client`` is ``AsyncClient``
run on a loop of its own in one thread, so it works where a loop already runs (Jupyter).
"""

from __future__ import annotations

import asyncio
import hashlib
import json
import os
import threading
import time
from collections.abc import AsyncGenerator, Coroutine, Iterator
from pathlib import Path
from typing import Any, TypeVar

import httpx
from pydantic import BaseModel

from sparktrainer.client.errors import JobNotCompleted, NotFound, Refused
from sparktrainer.client.http import HttpTransport
from sparktrainer.client.types import (
    JobState,
    JobVerdict,
    Listing,
    Model,
    Submitted,
    TenantUsage,
)

T = TypeVar("T")
DEFAULT_URL = "http://127.0.0.1:8080"  # where `sparktrainer up` serves the API
MAX_JOB_FILE_BYTES = 1 << 20  # a job file is a few hundred bytes; refuse to read a huge one
JobBody = dict[str, Any] | BaseModel | str | Path


def submission_body(job: JobBody) -> dict[str, Any]:
    """A job as the API takes it: a dict, a typed job (``JobSubmitted``) or a guide JSON file."""
    if isinstance(job, BaseModel):
        return dict(job.model_dump(mode="json", exclude_none=True))
    if isinstance(job, str | Path):
        path = Path(job)
        if path.stat().st_size > MAX_JOB_FILE_BYTES:
            raise Refused(f"{path} is over {MAX_JOB_FILE_BYTES} bytes: not a job file")
        job = json.loads(path.read_text())
    if not isinstance(job, dict):
        raise Refused(f"a job is a JSON object, not {type(job).__name__}")
    return job


class AsyncClient:
    """The client on the caller's event loop (``async with AsyncClient(...) as client``)."""

    def __init__(
        self,
        url: str | None = None,
        token: str | None = None,
        *,
        poll_s: float = 0.5,
        transport: httpx.AsyncBaseTransport | None = None,
    ) -> None:
        url = url or os.environ.get("SPARKTRAINER_API_URL") or DEFAULT_URL
        token = token or os.environ.get("SPARKTRAINER_API_TOKEN") or None
        self.api = HttpTransport(url, token, transport)
        self.poll_s = poll_s

    async def __aenter__(self) -> AsyncClient:
        return self

    async def __aexit__(self, *_: object) -> None:
        await self.close()

    async def close(self) -> None:
        await self.api.close()

    async def submit(self, job: JobBody) -> Submitted:
        """Publish a job (its id is given when it has none); the validator answers next."""
        return await self.api.submit(submission_body(job))

    async def validate(self, job: JobBody) -> JobVerdict:
        """The validator's verdict on a job, without submitting it."""
        return await self.api.validate(submission_body(job))

    async def job(self, job_id: str) -> JobState:
        """One job as the read model has it (its id or a unique prefix)."""
        return await self.api.job(job_id)

    async def follow(
        self, job_id: str, timeout_s: float | None = None
    ) -> AsyncGenerator[JobState, None]:
        """The job each time its status or progress changes, until it ends (the last one)."""
        deadline = None if timeout_s is None else time.monotonic() + timeout_s
        seen: tuple[Any, ...] | None = None
        while True:
            try:
                job = await self.api.job(job_id)
            except NotFound:  # submitted a moment ago: not folded yet
                job = None
            if job is not None and (job.status, job.progress) != seen:
                seen = (job.status, job.progress)
                yield job
                if job.ended:
                    return
            if deadline is not None and time.monotonic() > deadline:
                raise TimeoutError(f"job '{job_id}' did not end within {timeout_s:g} s")
            await asyncio.sleep(self.poll_s)

    async def wait(
        self, job_id: str, timeout_s: float | None = None, check: bool = True
    ) -> JobState:
        """The job once it has ended; ``JobNotCompleted`` if it did not complete (``check``)."""
        last: JobState | None = None
        async for job in self.follow(job_id, timeout_s):
            last = job
        assert last is not None  # follow yields the job's end before returning
        if check and last.status != "completed":
            raise JobNotCompleted(last)
        return last

    async def cancel(self, job_id: str, reason: str = "cancelled by the Python client") -> None:
        """Ask the trainer to stop a job; ``Conflict`` if it has ended, ``NotFound`` if unknown."""
        await self.api.cancel(job_id, reason)

    async def jobs(self, status: str | None = None, limit: int = 50, offset: int = 0) -> Listing:
        """Jobs, most recently updated first (``.jobs()`` types the items)."""
        return await self.api.jobs(status, limit, offset)

    async def metrics(self, job_id: str) -> dict[str, Any]:
        """The job's curves: ``{"series": {name: {"steps", "epochs", "values"}}, ...}``."""
        return await self.api.curves(job_id)

    async def models(self, **filters: Any) -> Listing:
        """Models, as `GET /api/models` filters them (name, alias, tag, metric, sort, ...)."""
        return await self.api.models(filters)

    async def model(self, ref: str) -> Model:
        """One model by id, ``NAME:VERSION`` or ``NAME@ALIAS``."""
        return await self.api.model(ref)

    async def lineage(self, ref: str) -> dict[str, Any]:
        """A model's ancestors (nearest first) and children."""
        return await self.api.lineage(ref)

    async def set_alias(self, name: str, alias: str, version: int) -> None:
        """Point ``NAME@ALIAS`` at a version."""
        await self.api.set_alias(name, alias, version)

    async def download(self, ref: str, directory: str | Path) -> list[Path]:
        """Every file of a model into ``directory``, each sha256 checked; the paths written."""
        written = []
        for f in await self.api.files(ref):
            data = await self.api.read_file(ref, f.path)
            if hashlib.sha256(data).hexdigest() != f.sha256:
                raise Refused(f"{f.path}: sha256 does not match the listing")
            written.append(await asyncio.to_thread(_write, Path(directory), f.path, data))
        return written

    async def queue(self) -> dict[str, Any]:
        """Waiting jobs per resource class, running jobs, trainers, tenants' usage."""
        return await self.api.queue()

    async def usage(self, tenant: str | None = None, days: int = 30) -> list[TenantUsage]:
        """GPU- and CPU-seconds by day and class: one tenant's, or every tenant's this token
        may read (its own; all for the default tenant's)."""
        return await self.api.usage(tenant, days)

    async def logs(self, job_id: str, attempt: int | None = None) -> str:
        """An attempt's output (the latest unless ``attempt``); ``NotFound`` before any is kept."""
        return await self.api.logs(job_id, attempt)


class Client:
    """``AsyncClient`` for code without a loop (scripts, notebooks): ``with Client() as c``."""

    def __init__(self, url: str | None = None, token: str | None = None, **kw: Any) -> None:
        self._loop = asyncio.new_event_loop()
        self._thread = threading.Thread(
            target=self._loop.run_forever, name="sparktrainer-client", daemon=True
        )
        self._thread.start()
        self.aio = self._run(_made(url, token, kw))

    def _run(self, coro: Coroutine[Any, Any, T]) -> T:
        return asyncio.run_coroutine_threadsafe(coro, self._loop).result()

    def __enter__(self) -> Client:
        return self

    def __exit__(self, *_: object) -> None:
        self.close()

    def close(self) -> None:
        """Close the connections and stop the client's thread (idempotent)."""
        if self._loop.is_closed():
            return
        self._run(self.aio.close())
        self._loop.call_soon_threadsafe(self._loop.stop)
        self._thread.join()
        self._loop.close()

    def submit(self, job: JobBody) -> Submitted:
        return self._run(self.aio.submit(job))

    def validate(self, job: JobBody) -> JobVerdict:
        return self._run(self.aio.validate(job))

    def job(self, job_id: str) -> JobState:
        return self._run(self.aio.job(job_id))

    def follow(self, job_id: str, timeout_s: float | None = None) -> Iterator[JobState]:
        events = self.aio.follow(job_id, timeout_s)
        try:
            while True:
                yield self._run(_next(events))
        except StopAsyncIteration:
            return
        finally:
            self._run(events.aclose())

    def wait(self, job_id: str, timeout_s: float | None = None, check: bool = True) -> JobState:
        return self._run(self.aio.wait(job_id, timeout_s, check))

    def cancel(self, job_id: str, reason: str = "cancelled by the Python client") -> None:
        self._run(self.aio.cancel(job_id, reason))

    def jobs(self, status: str | None = None, limit: int = 50, offset: int = 0) -> Listing:
        return self._run(self.aio.jobs(status, limit, offset))

    def metrics(self, job_id: str) -> dict[str, Any]:
        return self._run(self.aio.metrics(job_id))

    def models(self, **filters: Any) -> Listing:
        return self._run(self.aio.models(**filters))

    def model(self, ref: str) -> Model:
        return self._run(self.aio.model(ref))

    def lineage(self, ref: str) -> dict[str, Any]:
        return self._run(self.aio.lineage(ref))

    def set_alias(self, name: str, alias: str, version: int) -> None:
        self._run(self.aio.set_alias(name, alias, version))

    def download(self, ref: str, directory: str | Path) -> list[Path]:
        return self._run(self.aio.download(ref, directory))

    def logs(self, job_id: str, attempt: int | None = None) -> str:
        return self._run(self.aio.logs(job_id, attempt))

    def queue(self) -> dict[str, Any]:
        return self._run(self.aio.queue())

    def usage(self, tenant: str | None = None, days: int = 30) -> list[TenantUsage]:
        return self._run(self.aio.usage(tenant, days))


async def _next(events: AsyncGenerator[JobState, None]) -> JobState:
    return await anext(events)


def _write(directory: Path, path: str, data: bytes) -> Path:
    """One downloaded file under ``directory``; a path that would leave it is refused."""
    root = directory.resolve()
    target = (root / path).resolve()
    if not target.is_relative_to(root):  # a hostile path in the listing
        raise Refused(f"file path {path!r} leaves {root}")
    target.parent.mkdir(parents=True, exist_ok=True)
    target.write_bytes(data)
    return target


async def _made(url: str | None, token: str | None, kw: dict[str, Any]) -> AsyncClient:
    return AsyncClient(url, token, **kw)  # on the client's loop: its pool belongs there
