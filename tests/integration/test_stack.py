"""The embedded stack: real servers, durable across restarts, one per home, run by the CLI."""

from __future__ import annotations

import asyncio
import json
import os
import socket
import subprocess
import sys
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest
from aiokafka.admin import AIOKafkaAdminClient

from sparktrainer.bus.kafka import client_options
from sparktrainer.contracts.topics import ALL_TOPICS
from sparktrainer.embedded import (
    EmbeddedStack,
    ProcessRecord,
    ProcessStartError,
    ServiceSpec,
    StackError,
    embedded_available,
)
from sparktrainer.embedded.processes import (
    GRPC_OFFSET,
    is_alive,
    pick_ports,
    port_open,
    read_log,
)
from sparktrainer.embedded.servers import WEED_PORTS
from sparktrainer.settings import Settings
from sparktrainer.storage.s3 import ObjectStore
from tests.conftest import TEST_SETTINGS, KafkaHelper, make_test_settings

pytestmark = [
    pytest.mark.integration,
    pytest.mark.skipif(not embedded_available(), reason="needs sparktrainer[embedded]"),
]


@pytest.fixture(scope="module")
def own_stack(tmp_path_factory: pytest.TempPathFactory) -> Iterator[EmbeddedStack]:
    """A stack of this module's own, which the tests may restart without disturbing others."""
    home = tmp_path_factory.mktemp("own-stack")
    stack = EmbeddedStack(home, settings=make_test_settings(home=home), services=())
    stack.start()
    yield stack
    stack.stop()
    assert not any(stack.status().values())


def _all_ports(stack: EmbeddedStack) -> set[int]:
    ports = set(stack.ports.values())
    return ports | {stack.ports[name] + GRPC_OFFSET for name in WEED_PORTS}


async def test_session_stack_serves_s3_and_kafka(
    stack: Settings, store: ObjectStore, kafka: KafkaHelper, unique: Callable[[str], str]
) -> None:
    key = unique("stack-test") + "/hello.bin"
    store.put_bytes(key, b"\x00hello")
    assert store.get_bytes(key) == b"\x00hello"
    assert store.exists(key) and not store.exists(key + ".missing")

    topic = await kafka.create_topic()
    await kafka.produce(topic, {"hello": "kafka"}, key="k1", headers=[("h", b"v")])
    (record,) = await kafka.consume(topic)
    assert json.loads(record.value) == {"hello": "kafka"}
    assert record.key == b"k1" and list(record.headers) == [("h", b"v")]


async def test_records_and_committed_offsets_survive_a_broker_restart(
    own_stack: EmbeddedStack, unique: Callable[[str], str]
) -> None:
    kafka = KafkaHelper(own_stack.settings_for(), unique)
    try:
        topic = await kafka.create_topic()
        for value in (b"first", b"second"):
            await kafka.produce(topic, value)
        group = unique("group")
        (first,) = await kafka.consume(topic, group_id=group, commit=True)
        assert first.value == b"first"
        await kafka.close()

        old_pid = own_stack.processes()["tansu"].pid
        await asyncio.to_thread(own_stack.restart, "tansu")
        assert own_stack.processes()["tansu"].pid != old_pid

        assert await kafka.committed(topic, group) == 1
        (resumed,) = await kafka.consume(topic, group_id=group)
        assert resumed.value == b"second"
        everything = await kafka.consume(topic, 2)
        assert [r.value for r in everything] == [b"first", b"second"]
    finally:
        await kafka.close()


def test_two_stacks_on_one_machine_do_not_collide(own_stack: EmbeddedStack, tmp_path: Path) -> None:
    home = tmp_path / "other"
    with EmbeddedStack(home, settings=make_test_settings(home=home), services=()) as other:
        assert _all_ports(own_stack).isdisjoint(_all_ports(other))
        assert other.credentials() != own_stack.credentials()
        mine = ObjectStore.from_settings(own_stack.settings_for())
        theirs = ObjectStore.from_settings(other.settings_for())
        theirs.put_bytes("only-here", b"other")
        assert theirs.get_bytes("only-here") == b"other"
        assert not mine.exists("only-here")
        assert all(own_stack.status().values()) and all(other.status().values())
    assert not any(other.status().values())
    assert all(own_stack.status().values())


_SERVICE = """
import os, signal, sys, time
if sys.argv[1] == "stubborn":
    signal.signal(signal.SIGTERM, signal.SIG_IGN)
print("kafka at", os.environ["SPARKTRAINER_KAFKA_BOOTSTRAP_SERVERS"])
print("READY", sys.argv[1], file=sys.stderr, flush=True)
time.sleep(600)
"""


def test_services_start_beside_running_servers_and_stop_with_sigterm_or_sigkill(
    own_stack: EmbeddedStack,
) -> None:
    services = [ServiceSpec(name, ("-c", _SERVICE, name)) for name in ("polite", "stubborn")]
    # A second handle on the same home adopts the running servers and adds the services.
    handle = EmbeddedStack(own_stack.home, settings=own_stack.settings, services=services)
    handle.start()
    assert handle.status() == dict.fromkeys(["seaweedfs", "tansu", "polite", "stubborn"], True)
    polite = handle.processes()["polite"]
    assert own_stack.kafka_bootstrap_servers in read_log(polite)
    assert Path(polite.log) == own_stack.logs_dir / "polite.log"

    stubborn = handle.processes()["stubborn"]
    assert sorted(handle.stop(["polite", "stubborn"], timeout_s=1.0)) == ["polite", "stubborn"]
    assert not is_alive(polite) and not is_alive(stubborn)  # the stubborn one by SIGKILL
    assert own_stack.status() == {"seaweedfs": True, "tansu": True}


def test_a_service_that_dies_at_start_fails_the_start_with_its_log(
    own_stack: EmbeddedStack,
) -> None:
    crash = ServiceSpec("crash", ("-c", "raise SystemExit('no config for crash')"))
    handle = EmbeddedStack(own_stack.home, settings=own_stack.settings, services=[crash])
    with pytest.raises(ProcessStartError, match="no config for crash"):
        handle.start()
    assert "crash" not in handle.processes()
    assert own_stack.status() == {"seaweedfs": True, "tansu": True}


def test_a_stale_stack_json_does_not_block_a_start(tmp_path: Path) -> None:
    home = tmp_path / "stale"
    home.mkdir()
    finished = subprocess.Popen(["true"])
    finished.wait()  # its pid now names no process: a stack.json left by a crash looks like this
    stale = ProcessRecord("tansu", finished.pid, "1", str(home / "logs" / "tansu.log"))
    (home / "stack.json").write_text(json.dumps({"processes": {"tansu": stale.to_json()}}))
    with EmbeddedStack(home, settings=make_test_settings(home=home), services=()) as stack:
        assert stack.processes()["tansu"].pid != finished.pid
        assert all(stack.status().values())


def test_a_port_held_by_another_program_is_named(tmp_path: Path) -> None:
    port = pick_ports(["s3"])["s3"]
    with socket.socket() as squatter:
        squatter.bind(("127.0.0.1", port))
        squatter.listen()
        home = tmp_path / "busy"
        stack = EmbeddedStack(
            home, settings=make_test_settings(home=home), services=(), ports={"s3": port}
        )
        with pytest.raises(StackError, match=f"s3={port}"):
            stack.start()
    assert stack.status() == {}


def _cli(home: Path, *args: str) -> subprocess.CompletedProcess[str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("SPARKTRAINER_")}
    env["SPARKTRAINER_HOME"] = str(home)
    return subprocess.run(
        [sys.executable, "-m", "sparktrainer.cli.main", *args],
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
    )


def test_cli_up_detach_then_down_keeps_data_for_the_next_up(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, unique: Callable[[str], str]
) -> None:
    from sparktrainer.cli.stack import stack_settings

    home = tmp_path / "cli-home"
    for name in list(os.environ):
        if name.startswith("SPARKTRAINER_"):
            monkeypatch.delenv(name)
    monkeypatch.setenv("SPARKTRAINER_HOME", str(home))
    try:
        up = _cli(home, "up", "--detach", "--no-services")
        assert up.returncode == 0, up.stderr
        assert "Kafka bootstrap servers" in up.stdout
        assert _cli(home, "status").returncode == 0
        first = json.loads((home / "stack.json").read_text())
        records = [ProcessRecord.from_json(p) for p in first["processes"].values()]
        assert {r.name for r in records} == {"seaweedfs", "tansu"}
        assert all(map(is_alive, records))

        settings = stack_settings(**TEST_SETTINGS)  # what `sparktrainer submit` would use
        assert settings.kafka_bootstrap_servers == first["kafka_bootstrap_servers"]
        ObjectStore.from_settings(settings).put_bytes("marker", b"kept")
        topic = asyncio.run(_produce_on_new_topic(KafkaHelper(settings, unique), b"kept"))
        secret = settings.s3_secret_key.get_secret_value() if settings.s3_secret_key else ""
        assert secret and secret not in up.stdout + up.stderr

        down = _cli(home, "down")
        assert down.returncode == 0, down.stderr
        assert not any(map(is_alive, records))
        assert not port_open("127.0.0.1", first["ports"]["kafka"])
        assert _cli(home, "status").returncode == 1

        again = _cli(home, "up", "--detach", "--no-services")
        assert again.returncode == 0, again.stderr
        second = json.loads((home / "stack.json").read_text())
        assert second["ports"] == first["ports"]
        settings = stack_settings(**TEST_SETTINGS)
        assert ObjectStore.from_settings(settings).get_bytes("marker") == b"kept"
        (record,) = asyncio.run(KafkaHelper(settings, unique).consume(topic))
        assert record.value == b"kept"
    finally:
        _cli(home, "down")
    state = json.loads((home / "stack.json").read_text())
    assert state["processes"] == {}
    assert not any(
        map(is_alive, [ProcessRecord.from_json(p) for p in second["processes"].values()])
    )


async def _produce_on_new_topic(kafka: KafkaHelper, value: bytes) -> str:
    try:
        topic = await kafka.create_topic()
        await kafka.produce(topic, value)
        return topic
    finally:
        await kafka.close()


async def test_topics_exist_after_start(own_stack: EmbeddedStack) -> None:
    admin = AIOKafkaAdminClient(**client_options(own_stack.settings_for()))
    await admin.start()
    try:
        assert set(ALL_TOPICS) <= set(await admin.list_topics())
    finally:
        await admin.close()
