"""Hostile input and security: no secret in any output, the broker's authentication, resource caps.

The door's fuzzing lives in tests/unit/test_fuzz_door.py and a pickle hidden in a checkpoint in
test_faults_store.py; this file runs whole processes and reads everything they said.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
import secrets
import subprocess
import sys
import time
import urllib.error
import urllib.request
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from aiokafka.errors import KafkaConnectionError

from sparktrainer.bus.kafka import client_options, make_consumer, make_producer
from sparktrainer.bus.reader import LogReader
from sparktrainer.contracts.events import JobRejected, JobValidated
from sparktrainer.contracts.topics import (
    ALL_TOPICS,
    JOBS_REJECTED,
    JOBS_SUBMITTED,
    JOBS_VALIDATED,
)
from sparktrainer.embedded import DEFAULT_SERVICES, EmbeddedStack, embedded_available
from sparktrainer.embedded.processes import pick_ports, port_open, spawn
from sparktrainer.embedded.servers import TANSU, tansu_argv, tansu_binary, tansu_env
from sparktrainer.errors import ObjectNotFound
from sparktrainer.services.validator import validator_topics
from sparktrainer.settings import Settings
from sparktrainer.storage.s3 import ObjectStore
from tests.integration.faults_kit import FAST, log, mlp_job, needs_embedded
from tests.integration.tap import Tap, produce, start_group_at_end

pytestmark = [pytest.mark.integration]
_NO_PROXY = urllib.request.build_opener(urllib.request.ProxyHandler({}))


# -- secrets -----------------------------------------------------------------------------------


def _http(method: str, url: str, body: Any = None, token: str | None = None) -> tuple[int, str]:
    """One request; returns (status, headers and body as text)."""
    data = json.dumps(body).encode() if body is not None else None
    request = urllib.request.Request(url, data=data, method=method)
    request.add_header("content-type", "application/json")
    if token is not None:
        request.add_header("authorization", f"Bearer {token}")
    try:
        with _NO_PROXY.open(request, timeout=30) as response:
            return response.status, f"{response.headers}\n{response.read().decode()}"
    except urllib.error.HTTPError as e:
        return e.code, f"{e.headers}\n{e.read().decode()}"


async def _wait_http(url: str, timeout_s: float = 120.0) -> None:
    deadline = time.monotonic() + timeout_s
    while True:
        with contextlib.suppress(OSError):
            status, _ = await asyncio.to_thread(_http, "GET", url)
            if status < 500:
                return
        assert time.monotonic() < deadline, f"{url} never answered"
        await asyncio.sleep(0.3)


async def _every_record(settings: Settings) -> list[bytes]:
    """Keys, values and headers of every record on every topic (the stack is this test's own)."""
    out: list[bytes] = []
    deadline = time.monotonic() + 60
    async with LogReader(settings) as reader:
        tps = await reader.partitions(ALL_TOPICS)
        ends = await reader.ends(tps)
        await reader.assign_at_beginning(tps)
        async for batch in reader.read_range(ends, timeout_ms=200):
            assert time.monotonic() < deadline
            for r in batch:
                out.append(r.key or b"")
                out.append(r.value or b"")
                out += [k.encode() + b"=" + (v or b"") for k, v in r.headers]
    return out


def _cmdlines(stack: EmbeddedStack) -> list[bytes]:
    """argv of every process the stack runs (visible to any user through ps)."""
    out = []
    for record in stack.processes().values():
        with contextlib.suppress(OSError):
            out.append(Path(f"/proc/{record.pid}/cmdline").read_bytes())
    return out


@pytest.mark.slow
@needs_embedded
async def test_no_secret_in_any_output_of_a_full_job(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Validator, trainer, projector, API with a token, `submit --wait`: all that they say."""
    sasl_password = "sasl-" + secrets.token_urlsafe(18)
    api_token = "token-" + secrets.token_urlsafe(24)
    # tansu here takes no SASL (see the tests below): the password is configured everywhere and
    # loaded into every process's settings, while the connection itself stays PLAINTEXT.
    env = {
        "SPARKTRAINER_KAFKA_SECURITY_PROTOCOL": "PLAINTEXT",
        "SPARKTRAINER_KAFKA_SASL_MECHANISM": "SCRAM-SHA-512",
        "SPARKTRAINER_KAFKA_SASL_USERNAME": "sparktrainer",
        "SPARKTRAINER_KAFKA_SASL_PASSWORD": sasl_password,
        "SPARKTRAINER_API_TOKEN": api_token,
        "SPARKTRAINER_API_OPEN_READS": "true",  # the reads below go without the token
        "SPARKTRAINER_LOG_LEVEL": "DEBUG",
        "SPARKTRAINER_KAFKA_SESSION_TIMEOUT_MS": "1000",
        "SPARKTRAINER_KAFKA_HEARTBEAT_INTERVAL_MS": "300",
    }
    for name, value in env.items():
        monkeypatch.setenv(name, value)
    home = tmp_path / "home"
    monkeypatch.setenv("SPARKTRAINER_HOME", str(home))
    stack = EmbeddedStack(home, settings=Settings(home=home), services=DEFAULT_SERVICES)
    said: dict[str, bytes] = {}
    with stack:
        settings = stack.settings_for()
        s3_secret = stack.credentials().secret_key
        child_env = {**os.environ, **stack.env(), "PYTHONUNBUFFERED": "1"}
        port = pick_ports(["api"])["api"]
        api_log = tmp_path / "api.log"
        with api_log.open("wb") as out:
            api = subprocess.Popen(  # noqa: ASYNC220 - starting is instant
                [sys.executable, "-m", "sparktrainer.cli.main", "serve", "api",
                 "--with-projector", "--port", str(port), "--db", str(tmp_path / "api.sqlite3")],
                env=child_env, stdout=out, stderr=subprocess.STDOUT,
            )  # fmt: skip
        base = f"http://127.0.0.1:{port}"
        try:
            await _wait_http(base + "/api/health")
            via_api = mlp_job("secret-api", epochs=2)
            status, text = await asyncio.to_thread(
                _http, "POST", base + "/api/jobs", via_api, api_token
            )
            assert status == 202, text
            said["api: accepted"] = text.encode()
            status, text = await asyncio.to_thread(
                _http, "POST", base + "/api/jobs", via_api, api_token[:-2] + "xx"
            )
            assert status == 401, text
            said["api: wrong token"] = text.encode()
            status, text = await asyncio.to_thread(_http, "POST", base + "/api/jobs", via_api)
            said["api: no token"] = text.encode()
            bad = {**via_api, "config": {**via_api["config"], "epochs": -1}}
            said["api: bad job"] = (
                await asyncio.to_thread(_http, "POST", base + "/api/jobs/validate", bad)
            )[1].encode()

            via_cli = mlp_job("secret-cli", epochs=2)
            (tmp_path / "job.json").write_text(json.dumps(via_cli))
            cli = await asyncio.to_thread(
                subprocess.run,
                [sys.executable, "-m", "sparktrainer.cli.main", "submit",
                 str(tmp_path / "job.json"), "--wait", "--timeout", "180"],
                env=child_env, capture_output=True, timeout=240,
            )  # fmt: skip
            said["cli: submit --wait"] = cli.stdout + cli.stderr
            assert cli.returncode == 0, said["cli: submit --wait"][-2000:]
            missing = await asyncio.to_thread(
                subprocess.run,
                [sys.executable, "-m", "sparktrainer.cli.main", "models", "show", "no-such-model"],
                env=child_env, capture_output=True, timeout=120,
            )  # fmt: skip
            said["cli: an error"] = missing.stdout + missing.stderr
            assert missing.returncode != 0
            deadline = time.monotonic() + 180
            while True:
                status, text = await asyncio.to_thread(
                    _http, "GET", f"{base}/api/jobs/{via_api['job_id']}"
                )
                if status == 200 and '"status":"completed"' in text.replace(" ", ""):
                    break
                assert time.monotonic() < deadline, text
                await asyncio.sleep(0.5)
            said["api: job"] = text.encode()
            said["api: model"] = (
                await asyncio.to_thread(_http, "GET", f"{base}/api/models/{via_api['job_id']}")
            )[1].encode()
        finally:
            api.terminate()
            await asyncio.to_thread(api.wait, 30)
        said["api log"] = api_log.read_bytes()
        said["processes' argv"] = b"\n".join(_cmdlines(stack))
        trainer_pid = stack.processes()["trainer"].pid
        environ = await asyncio.to_thread(Path(f"/proc/{trainer_pid}/environ").read_bytes)
        said["events on every topic"] = b"\n".join(await _every_record(settings))
        store = ObjectStore.from_settings(settings)
        said["objects in the bucket"] = b"\n".join(store.get_bytes(k) for k in store.list(""))
        try:
            store.get_bytes("no/such/object")
        except ObjectNotFound as e:
            said["a storage error"] = str(e).encode()
        said["stack.json"] = (home / "stack.json").read_bytes()
        said["settings"] = "\n".join(
            [repr(settings), str(settings), settings.model_dump_json(), repr(Settings()),
             repr(store), repr(stack), repr(client_options(settings))]
        ).encode()  # fmt: skip
    for log_file in sorted((home / "logs").glob("*.log")):
        said[f"log {log_file.name}"] = log_file.read_bytes()
    log("searched", {name: len(text) for name, text in said.items()})

    # The searches can find what they look for: the trainer was given the password, and the
    # stack's key file (0600, by design) holds the S3 secret.
    assert sasl_password.encode() in environ and api_token.encode() in environ
    assert s3_secret.encode() in (home / "credentials.json").read_bytes()
    assert b"SPARKTRAINER_LOG_LEVEL=DEBUG" in environ  # the services said all they had
    for secret_name, secret in (
        ("S3 secret key", s3_secret),
        ("SASL password", sasl_password),
        ("API token", api_token),
    ):
        leaks = [name for name, text in said.items() if secret.encode() in text]
        assert not leaks, f"the {secret_name} appears in: {leaks}"


# -- Kafka authentication ----------------------------------------------------------------------
#
# tansu 0.6 requires authentication with `broker --authentication` (SASL SCRAM only) and
# creates users with `tansu user create`. On its S3 storage engine that command returns 0
# but stores nothing (no object changes in the bucket; tried against a broker with and without
# --authentication), so every SCRAM exchange ends with the server-final message
# "e=unknown-user", which aiokafka 0.14 does not parse (KeyError 'v'). SASL end to end cannot
# be shown with this broker; what can be shown is below, and the round trip is a strict xfail
# that turns red the day tansu keeps its users.


@pytest.fixture(scope="module")
def auth_broker(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[Settings, Path]]:
    """A private stack whose tansu requires authentication; user alice created beforehand."""
    if not embedded_available():
        pytest.skip("needs sparktrainer[embedded] (a broker of its own)")
    root = tmp_path_factory.mktemp("auth-stack")
    stack = EmbeddedStack(root, settings=Settings(**FAST, home=root), services=())
    settings = stack.start()
    child = None
    try:
        port, tansu = stack.ports["kafka"], tansu_binary()
        assert tansu is not None
        created = subprocess.run(
            [tansu, "user", "create", "--broker", f"tcp://127.0.0.1:{port}",
             "--mechanism", "scram512", "alice", "alice-password"],
            capture_output=True, text=True, timeout=60,
        )  # fmt: skip
        assert created.returncode == 0, created.stderr
        stack.stop([TANSU])
        env = tansu_env(stack.credentials(), stack.s3_endpoint, settings.s3_region)
        argv = [*tansu_argv(tansu, port), "--authentication"]
        child, _ = spawn("tansu-auth", argv, env, root / "tansu-auth.log")
        deadline = time.monotonic() + 30
        while not port_open("127.0.0.1", port):
            assert child.poll() is None and time.monotonic() < deadline, "tansu did not start"
            time.sleep(0.05)
        yield settings, root / "tansu-auth.log"
    finally:
        if child is not None:
            child.terminate()
            try:
                child.wait(10)
            except subprocess.TimeoutExpired:
                child.kill()
                child.wait(5)
        stack.stop(timeout_s=5)


async def test_a_broker_that_requires_authentication_refuses_unauthenticated_clients(
    auth_broker: tuple[Settings, Path],
) -> None:
    settings, broker_log = auth_broker
    producer = make_producer(settings, request_timeout_ms=5000)
    with pytest.raises(KafkaConnectionError):
        await asyncio.wait_for(producer.start(), 30)
    with contextlib.suppress(Exception):
        await producer.stop()
    consumer = make_consumer(settings, JOBS_SUBMITTED, group_id="anonymous")
    with pytest.raises(KafkaConnectionError):
        await asyncio.wait_for(consumer.start(), 30)
    with contextlib.suppress(Exception):
        await consumer.stop()
    assert "NotAuthenticated" in broker_log.read_text()


class _ScramSpy:
    """Records what aiokafka's SCRAM authenticator was given and what the broker answered."""

    def __init__(self, monkeypatch: pytest.MonkeyPatch) -> None:
        from aiokafka import conn

        self.created: list[tuple[str, str, bytes]] = []
        self.server_messages: list[str] = []
        spy, cls = self, conn.ScramAuthenticator
        init, first, final = (
            cls.__init__,
            cls.process_server_first_message,
            cls.process_server_final_message,
        )

        def record_init(self: Any, **kw: Any) -> None:
            init(self, **kw)
            spy.created.append((kw["sasl_mechanism"], kw["sasl_plain_username"],
                                self._sasl_plain_password))  # fmt: skip

        def record_first(self: Any, message: str) -> None:
            spy.server_messages.append(message)
            first(self, message)

        def record_final(self: Any, message: str) -> None:
            spy.server_messages.append(message)
            final(self, message)

        monkeypatch.setattr(cls, "__init__", record_init)
        monkeypatch.setattr(cls, "process_server_first_message", record_first)
        monkeypatch.setattr(cls, "process_server_final_message", record_final)


def _sasl_settings(settings: Settings, monkeypatch: pytest.MonkeyPatch, password: str) -> Settings:
    """Settings as a deployment gets them: from SPARKTRAINER_KAFKA_SASL_* in the environment."""
    monkeypatch.setenv("SPARKTRAINER_KAFKA_BOOTSTRAP_SERVERS", settings.kafka_ready())
    monkeypatch.setenv("SPARKTRAINER_KAFKA_SASL_MECHANISM", "SCRAM-SHA-512")
    monkeypatch.setenv("SPARKTRAINER_KAFKA_SASL_USERNAME", "alice")
    monkeypatch.setenv("SPARKTRAINER_KAFKA_SASL_PASSWORD", password)
    monkeypatch.delenv("SPARKTRAINER_KAFKA_SECURITY_PROTOCOL", raising=False)
    return Settings()


async def test_sasl_settings_reach_the_client_and_the_scram_handshake_uses_them(
    auth_broker: tuple[Settings, Path],
    monkeypatch: pytest.MonkeyPatch,
    caplog: pytest.LogCaptureFixture,
) -> None:
    settings, _ = auth_broker
    sasl = _sasl_settings(settings, monkeypatch, "alice-password")
    options = client_options(sasl)
    assert options["security_protocol"] == "SASL_PLAINTEXT"  # implied by the mechanism
    assert (options["sasl_mechanism"], options["sasl_plain_username"]) == ("SCRAM-SHA-512", "alice")
    assert options["sasl_plain_password"] == "alice-password"
    assert "alice-password" not in repr(sasl)
    spy = _ScramSpy(monkeypatch)
    producer = make_producer(sasl, request_timeout_ms=5000)
    with pytest.raises(Exception) as failed:
        await asyncio.wait_for(producer.start(), 30)
    with contextlib.suppress(Exception):
        await producer.stop()
    # The client ran the SCRAM exchange with our settings, and the broker took part in it.
    assert spy.created and set(spy.created) == {("SCRAM-SHA-512", "alice", b"alice-password")}
    assert spy.server_messages[0].startswith("r="), spy.server_messages  # server-first
    # ...and refused it the way tansu 0.6 on S3 storage refuses every user (see above).
    assert spy.server_messages[-1] == "e=unknown-user", spy.server_messages
    assert "alice-password" not in f"{failed.value!r} {failed.value}" + caplog.text


@pytest.mark.xfail(
    strict=True,
    reason="tansu 0.6 (S3 storage) keeps no SCRAM users: every exchange ends in e=unknown-user",
)
async def test_sasl_round_trip_through_an_authenticating_broker(
    auth_broker: tuple[Settings, Path], monkeypatch: pytest.MonkeyPatch
) -> None:
    settings, _ = auth_broker
    sasl = _sasl_settings(settings, monkeypatch, "alice-password")
    producer = make_producer(sasl, request_timeout_ms=5000)
    try:
        await asyncio.wait_for(producer.start(), 30)
        await producer.send_and_wait(JOBS_SUBMITTED, b"{}")
    finally:
        with contextlib.suppress(Exception):
            await producer.stop()


# -- resource caps -----------------------------------------------------------------------------


async def _start_validator(env: dict[str, str], group_id: str) -> subprocess.Popen[bytes]:
    proc = subprocess.Popen(  # noqa: ASYNC220 - starting is instant; reading is offloaded
        [sys.executable, "-m", "consumers.validator", "--group-id", group_id],
        env=env,
        stderr=subprocess.PIPE,
        stdout=subprocess.DEVNULL,
    )
    assert proc.stderr is not None
    loop = asyncio.get_running_loop()
    while True:
        line = await asyncio.wait_for(loop.run_in_executor(None, proc.stderr.readline), 120)
        if not line:
            raise AssertionError(f"validator exited early with {proc.wait()}")
        if line.startswith(b"READY validator"):
            loop.run_in_executor(None, proc.stderr.read)
            return proc


async def test_caps_set_in_the_environment_reject_jobs_before_they_train(
    settings: Settings, unique
) -> None:
    """A validator process with SPARKTRAINER_MAX_* caps: every job beyond one is rejected."""
    group = unique("caps-validator")
    await start_group_at_end(settings, group, *validator_topics(settings))
    caps = {
        "SPARKTRAINER_MAX_EPOCHS": "5",
        "SPARKTRAINER_MAX_BATCH_SIZE": "64",
        "SPARKTRAINER_MAX_HIDDEN_UNITS": "128",
        "SPARKTRAINER_MAX_JOB_RUNTIME_S": "60",
        "SPARKTRAINER_MAX_SUBMISSION_BYTES": "4096",
    }
    env = {**os.environ, **caps, "SPARKTRAINER_LOG_LEVEL": "WARNING"}
    within = mlp_job("caps-ok", epochs=5, batch_size=64, hidden_layers=[128], max_runtime_s=60)
    beyond = {
        "epochs 6 is above this deployment's limit of 5": mlp_job("caps-epochs", epochs=6),
        "batch_size 128 is above this deployment's limit of 64": mlp_job(
            "caps-batch", batch_size=128
        ),
        "config.hidden_layers (widest) 256 is above this deployment's limit of 128": mlp_job(
            "caps-width", hidden_layers=[256]
        ),
        "max_runtime_s 120 is above this deployment's limit of 60": mlp_job(
            "caps-runtime", max_runtime_s=120
        ),
        "above the limit of 4096 bytes": {**mlp_job("caps-size"), "description": "x" * 5000},
    }
    validator = await _start_validator(env, group)
    try:
        async with Tap(settings, JOBS_VALIDATED, JOBS_REJECTED) as tap:
            producer = make_producer(settings)
            await producer.start()
            try:
                # An oversized record is refused unread: its answer names where it was, not its id.
                where = {
                    job["job_id"]: await produce(producer, JOBS_SUBMITTED, job)
                    for job in (within, *beyond.values())
                }
            finally:
                await producer.stop()

            def answers(e: Any) -> bool:
                source = getattr(e, "source", None)
                at = (source.partition, source.offset) if source else None
                return getattr(e, "job_id", None) in where or at in where.values()

            await tap.wait_for(answers, len(where), 60)
            verdicts = {}
            for e in tap.events:
                if e is not None and answers(e):
                    at = (e.source.partition, e.source.offset)
                    verdicts[next(j for j, w in where.items() if w == at)] = e
    finally:
        validator.terminate()
        await asyncio.to_thread(validator.wait, 30)
    assert isinstance(verdicts[within["job_id"]], JobValidated), verdicts[within["job_id"]]
    for message, job in beyond.items():
        verdict = verdicts[job["job_id"]]
        assert isinstance(verdict, JobRejected), verdict
        assert any(message in error for error in verdict.errors), verdict.errors
    validated_ids = [e.job_id for e in tap.events if isinstance(e, JobValidated)]
    assert validated_ids == [within["job_id"]]  # nothing beyond a cap goes on to a trainer
