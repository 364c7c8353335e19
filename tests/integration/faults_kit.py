"""Fault-injection helpers: private servers to break, services in-process, and an audit of the log.

Tests that stop or kill a server use servers of their own (``private_stack``, ``S3Server``)
so the session's stack, which every other test shares, never sees the fault.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import secrets
import signal
import subprocess
import time
import uuid
from collections import Counter, defaultdict
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest
from aiokafka import AIOKafkaProducer, TopicPartition
from pydantic import SecretStr

from consumers.validator import build_runtime
from sparktrainer.bus.reader import LogReader
from sparktrainer.contracts.envelope import EnvelopeError, decode, header_map
from sparktrainer.contracts.events import (
    JobCancelled,
    JobCompleted,
    JobFailed,
    JobRejected,
    JobValidated,
)
from sparktrainer.contracts.records import Received
from sparktrainer.contracts.topics import (
    JOBS_CONTROL,
    JOBS_LIFECYCLE,
    JOBS_REJECTED,
    JOBS_VALIDATED,
    MODELS_REGISTERED,
    VALIDATED_TOPICS,
)
from sparktrainer.embedded import EmbeddedStack, embedded_available
from sparktrainer.embedded.processes import http_answers, pick_ports, spawn
from sparktrainer.embedded.processes import wait_until as wait_process
from sparktrainer.embedded.servers import (
    WEED_PORTS,
    Credentials,
    server_env,
    weed_argv,
    weed_binary,
)
from sparktrainer.errors import StorageError
from sparktrainer.registry import db, jobs, models
from sparktrainer.registry.runner import Projector
from sparktrainer.services.trainer import TrainerService
from sparktrainer.services.validator import validator_topics
from sparktrainer.settings import Settings
from sparktrainer.storage.s3 import ObjectStore
from sparktrainer.validation.checks import validate_job
from tests.integration.procs import start_consumer
from tests.integration.tap import producer_for, start_group_at_end

# Short group timeouts (a join in ~1 s) and a small S3 retry budget, so faults resolve quickly.
FAST: dict[str, Any] = {
    "kafka_session_timeout_ms": 1000,
    "kafka_heartbeat_interval_ms": 300,
    "s3_retry_attempts": 5,
    "s3_retry_backoff_s": 0.2,
}
STORY_TOPICS = (JOBS_VALIDATED, JOBS_REJECTED, JOBS_LIFECYCLE, MODELS_REGISTERED)
TERMINAL = ("completed", "failed", "cancelled", "rejected")
needs_embedded = pytest.mark.skipif(
    not embedded_available(), reason="needs sparktrainer[embedded] (private servers to break)"
)


def log(*parts: object) -> None:
    """A timestamped line in the test's captured output (shown when it fails)."""
    print(f"[{time.strftime('%H:%M:%S')}]", *parts, flush=True)


# -- jobs ------------------------------------------------------------------------------------


def mlp_job(prefix: str, **config: Any) -> dict[str, Any]:
    """A small digits MLP job as a publisher writes it (about 0.1-0.3 s an epoch here)."""
    return {
        "job_id": f"{prefix}-{uuid.uuid4().hex[:10]}",
        "name": f"{prefix} job",
        "type": "train",
        "framework": "pytorch",
        "config": {
            "architecture": "custom",
            "input_size": 64,
            "output_size": 10,
            "hidden_layers": [64],
            "epochs": 3,
            "batch_size": 32,
            "data": {"source": "digits"},
            **config,
        },
    }


def validated(job: dict[str, Any]) -> JobValidated:
    """The JobValidated the validator would send for ``job`` (to feed a trainer directly)."""
    result = validate_job(job, None)
    assert result.valid, result.errors
    assert result.config is not None
    return JobValidated(
        job_id=job["job_id"],
        name=job["name"],
        type=job["type"],
        framework=job["framework"],
        config_kind=result.config.kind,
        config=result.config,
    )


# -- private servers -------------------------------------------------------------------------


@contextlib.contextmanager
def private_stack(root: Path, **overrides: Any) -> Iterator[tuple[EmbeddedStack, Settings]]:
    """SeaweedFS + tansu of this test's own (servers only), stopped afterwards."""
    base = Settings(**{**FAST, **overrides, "home": root})
    stack = EmbeddedStack(root / "stack", settings=base, services=())
    try:
        yield stack, stack.start()
    finally:
        stack.stop(timeout_s=5)


def crash(stack: EmbeddedStack, name: str) -> None:
    """SIGKILL one server of a private stack (no goodbye to its clients) and reap it."""
    record = stack.processes()[name]
    os.killpg(record.pid, signal.SIGKILL)
    child = stack._children.get(record.pid)
    if child is not None:
        child.wait(10)


class S3Server:
    """A second SeaweedFS, used as the jobs' object store, that a test may stop and restart.

    The broker keeps its log on the private stack's own SeaweedFS, so an outage of this one
    is an object-store outage only (as when MinIO and Kafka are separate services).
    """

    def __init__(self, root: Path, bucket: str = "sparktrainer") -> None:
        self.root = root
        self.bucket = bucket
        self.keys = Credentials("st" + secrets.token_hex(6), secrets.token_urlsafe(20))
        self.ports = pick_ports(WEED_PORTS, with_grpc=WEED_PORTS)
        self.endpoint = f"http://127.0.0.1:{self.ports['s3']}"
        self._child: subprocess.Popen[bytes] | None = None

    def settings(self, base: Settings, port: int | None = None) -> Settings:
        """``base`` with this server (or a relay to it on ``port``) as its object store."""
        return base.model_copy(
            update={
                "s3_endpoint": f"http://127.0.0.1:{port}" if port else self.endpoint,
                "s3_access_key": SecretStr(self.keys.access_key),
                "s3_secret_key": SecretStr(self.keys.secret_key),
                "s3_bucket": self.bucket,
            }
        )

    def start(self, base: Settings) -> None:
        """Start (or restart, on the same ports and data) and wait until the bucket answers."""
        weed = weed_binary()
        assert weed is not None
        (self.root / "data").mkdir(parents=True, exist_ok=True)
        argv = weed_argv(weed, self.root / "data", self.ports)
        self._child, record = spawn("jobstore", argv, server_env(self.keys), self.root / "s3.log")
        wait_process(
            "S3 answers", lambda: http_answers(self.endpoint + "/"), record, self._child, 60
        )
        store = ObjectStore.from_settings(self.settings(base).model_copy(update=FAST))
        deadline = time.monotonic() + 60
        while True:  # right after a start SeaweedFS may refuse the keys until its IAM loads
            try:
                store.ensure_bucket()
                return
            except StorageError:
                if time.monotonic() > deadline:
                    raise
                time.sleep(0.2)

    def stop(self) -> None:
        """Stop it as an operator would (SIGTERM, then SIGKILL after 10 s)."""
        child, self._child = self._child, None
        if child is None or child.poll() is not None:
            return
        child.terminate()
        try:
            child.wait(10)
        except subprocess.TimeoutExpired:
            os.killpg(child.pid, signal.SIGKILL)
            child.wait(5)


class S3Gate:
    """A TCP relay in front of an S3 server that holds the first request matching a pattern.

    The test learns the moment an upload starts (e.g. the first PUT under ``models/ID/``),
    stops the server while that request waits here, then lets it go on to a dead server: the
    fault lands inside that very upload, every run.
    """

    def __init__(self, upstream_port: int) -> None:
        self.upstream_port = upstream_port
        self.port = 0
        self.held = asyncio.Event()
        self._release = asyncio.Event()
        self._pattern: bytes | None = None
        self._skip = 0  # matching requests still to let through before the held one
        self._server: asyncio.Server | None = None
        self.refused = 0  # connections that found the server down (each an attempt of a call)

    async def start(self) -> None:
        """Listen on a free loopback port."""
        self._server = await asyncio.start_server(self._serve, "127.0.0.1", 0)
        self.port = self._server.sockets[0].getsockname()[1]

    def arm(self, pattern: bytes, skip: int = 0) -> None:
        """Hold the next request whose bytes contain ``pattern`` (after ``skip`` such requests
        passed) until ``release``."""
        self.held.clear()
        self._release.clear()
        self._pattern, self._skip = pattern, skip

    def release(self) -> None:
        """Let the held request go on."""
        self._release.set()

    async def _serve(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        try:
            up_reader, up_writer = await asyncio.open_connection("127.0.0.1", self.upstream_port)
        except OSError:  # the server is down: the client sees its connection dropped
            self.refused += 1
            writer.close()
            return

        async def upstream() -> None:
            while data := await reader.read(1 << 16):
                if self._pattern is not None and self._pattern in data:
                    if self._skip:
                        self._skip -= 1
                    else:
                        self._pattern = None
                        self.held.set()
                        await self._release.wait()
                up_writer.write(data)
                await up_writer.drain()

        async def downstream() -> None:
            while data := await up_reader.read(1 << 16):
                writer.write(data)
                await writer.drain()

        pumps = [asyncio.ensure_future(upstream()), asyncio.ensure_future(downstream())]
        try:
            await asyncio.wait(pumps, return_when=asyncio.FIRST_COMPLETED)
        finally:
            for pump in pumps:
                pump.cancel()
            await asyncio.gather(*pumps, return_exceptions=True)
            for w in (writer, up_writer):
                w.close()

    async def stop(self) -> None:
        """Stop listening (open relays end with their connections)."""
        if self._server is not None:
            self._server.close()
            self._release.set()


# -- services --------------------------------------------------------------------------------


@dataclass
class Services:
    """A validator, a trainer and a projector in this process, on fresh consumer groups.

    ``trainer_settings`` lets the trainer (and the validator's reads) use another object store
    or other limits than the broker's settings.
    """

    settings: Settings
    db_path: Path
    trainer_settings: Settings | None = None
    prefix: str = field(default_factory=lambda: f"svc-{uuid.uuid4().hex[:8]}")
    validator: Any = None
    trainer: TrainerService | None = None
    projector: Projector | None = None
    producer: AIOKafkaProducer | None = None
    _stop: asyncio.Event = field(default_factory=asyncio.Event)
    _tasks: list[asyncio.Task[Any]] = field(default_factory=list)

    async def __aenter__(self) -> Services:
        groups = {n: f"{self.prefix}-{n}" for n in ("validator", "trainer", "control")}
        await start_group_at_end(
            self.settings, groups["validator"], *validator_topics(self.settings)
        )
        await start_group_at_end(self.settings, groups["trainer"], *VALIDATED_TOPICS)
        await start_group_at_end(self.settings, groups["control"], JOBS_CONTROL)
        jobs_settings = self.trainer_settings or self.settings
        self.validator = build_runtime(
            self.settings, ObjectStore.from_settings(jobs_settings), group_id=groups["validator"]
        )
        self.trainer = TrainerService(
            jobs_settings, group_id=groups["trainer"], control_group_id=groups["control"]
        )
        self.projector = Projector(self.settings, self.db_path)
        await self.projector.start()
        self._tasks = [
            asyncio.create_task(self.validator.run(), name="validator"),
            asyncio.create_task(self.trainer.run(), name="trainer"),
            asyncio.create_task(self.projector.run(self._stop), name="projector"),
        ]
        await self.validator.wait_positioned()
        await self.trainer.wait_positioned(300)
        self.producer = producer_for(self.settings)
        await self.producer.start()
        return self

    def alive(self) -> dict[str, bool]:
        """Which service loops still run (none may die of a fault)."""
        return {t.get_name(): not t.done() for t in self._tasks}

    def job_row(self, job_id: str) -> dict[str, Any] | None:
        """The job as the read model shows it."""
        assert self.projector is not None
        return jobs.get_job(self.projector.conn, job_id)

    def model_row(self, model_id: str) -> dict[str, Any] | None:
        """The model as the read model lists it."""
        assert self.projector is not None
        return models.get_model(self.projector.conn, model_id)

    def models_total(self) -> int:
        """How many models the read model lists."""
        assert self.projector is not None
        return models.list_models(self.projector.conn).total

    async def caught_up(self, timeout_s: float = 60.0) -> None:
        """Wait until the read model has folded the log up to its end as of now."""
        assert self.projector is not None
        conn = self.projector.conn
        async with LogReader(self.settings) as reader:
            ends = await reader.ends(self.projector.assigned)

        def folded() -> bool:
            stored = db.stored_offsets(conn)
            return all(stored.get((tp.topic, tp.partition), 0) >= n for tp, n in ends.items())

        await until(folded, timeout_s)

    async def wait_terminal(self, job_ids: list[str], timeout_s: float) -> dict[str, str]:
        """Wait until the read model shows every job in a terminal state; their statuses."""
        deadline = time.monotonic() + timeout_s
        while True:
            statuses = {j: (self.job_row(j) or {}).get("status") for j in job_ids}
            if all(s in TERMINAL for s in statuses.values()):
                return statuses  # type: ignore[return-value]
            died = [t for t in self._tasks if t.done()]
            assert not died, f"a service loop died: {[t.get_name() for t in died]}: {statuses}"
            if time.monotonic() > deadline:
                raise AssertionError(f"not all jobs ended within {timeout_s} s: {statuses}")
            await asyncio.sleep(0.3)

    async def __aexit__(self, *exc: object) -> None:
        if self.producer is not None:
            await self.producer.stop()
        if self.validator is not None:
            self.validator.stop()
        if self.trainer is not None:
            self.trainer.stop()
        self._stop.set()
        results = await asyncio.gather(*self._tasks, return_exceptions=True)
        if self.projector is not None:
            await self.projector.close()
        failures = [r for r in results if isinstance(r, BaseException)]
        assert not failures, f"a service loop died: {failures!r}"


# -- trainer processes -----------------------------------------------------------------------


async def start_trainer_process(env: dict[str, str], group_id: str) -> subprocess.Popen[bytes]:
    """``python -m consumers.trainer`` in its own process group; returns once it says READY."""
    return await start_consumer("consumers.trainer", group_id, env)


# -- reading the log back --------------------------------------------------------------------


async def log_ends(settings: Settings, topics: tuple[str, ...]) -> dict[TopicPartition, int]:
    """Where each partition of ``topics`` ends now (a mark to read from later)."""
    async with LogReader(settings) as reader:
        return await reader.ends(await reader.partitions(topics))


async def read_log(
    settings: Settings, since: dict[TopicPartition, int], timeout_s: float = 30.0
) -> list[Received]:
    """Every record from ``since`` (a ``log_ends`` mark) to the end of the log as of now."""
    records: list[Received] = []
    deadline = time.monotonic() + timeout_s
    async with LogReader(settings) as reader:
        ends = await reader.ends(list(since))
        reader.assign(since)
        async for batch in reader.read_range(ends, timeout_ms=200):
            assert time.monotonic() < deadline, "could not read the log back"
            records += batch
    return records


@dataclass
class Story:
    """What the log says about one job: its events in log order, and distinct ones by ce_id."""

    events: list[Any] = field(default_factory=list)
    ids: dict[str, Any] = field(default_factory=dict)  # ce_id -> event (duplicates collapse)

    def distinct(self, *kinds: type) -> list[Any]:
        """Events of these kinds, one per ce_id (a redelivery re-sends the same id)."""
        return [e for e in self.ids.values() if isinstance(e, kinds)]

    def count(self, *kinds: type) -> int:
        """How many records of these kinds the log holds (duplicates included)."""
        return sum(isinstance(e, kinds) for e in self.events)


def stories(records: list[Received]) -> dict[str, Story]:
    """Group our events by job id (the CloudEvents subject)."""
    out: dict[str, Story] = defaultdict(Story)
    for r in records:
        headers = header_map(r.headers)
        try:
            event = decode(r.value, r.headers)
        except EnvelopeError:
            continue
        job_id = getattr(event, "job_id", None) or headers.get("ce_subject")
        story = out[job_id]
        story.events.append(event)
        story.ids.setdefault(headers.get("ce_id", f"{r.topic}/{r.partition}/{r.offset}"), event)
    return out


def assert_answered_once(story: Story, job_id: str) -> Any:
    """One terminal answer in effect (a re-sent one has the same ce_id), and its model once."""
    from sparktrainer.contracts.events import ModelRegistered

    ends = story.distinct(JobCompleted, JobFailed, JobCancelled, JobRejected)
    ends = [e for e in ends if not getattr(e, "already_ended", None)]
    assert len(ends) == 1, f"{job_id}: {len(ends)} distinct terminal events: {ends}"
    registered = story.distinct(ModelRegistered)
    if isinstance(ends[0], JobCompleted):
        assert len(registered) == 1, f"{job_id}: {len(registered)} registrations"
    else:
        assert not registered, f"{job_id} did not complete but registered a model"
    return ends[0]


def kinds(story: Story) -> Counter[str]:
    """Event class names and how often the log holds each (for failure messages)."""
    return Counter(type(e).__name__ for e in story.events)


async def until(check: Callable[[], bool], timeout_s: float = 120.0) -> None:
    """Poll ``check`` until it holds (fails the test after ``timeout_s``)."""
    deadline = time.monotonic() + timeout_s
    while not check():
        assert time.monotonic() < deadline, "condition not met in time"
        await asyncio.sleep(0.1)
