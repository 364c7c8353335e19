"""The embedded stack: SeaweedFS (S3) and tansu (Kafka) as child processes, plus the consumers.

Everything lives under one home folder::

    home/stack.json        ports, addresses and the pids of what runs (no secrets)
    home/credentials.json  the S3 keys of this home (mode 0600)
    home/s3/               SeaweedFS data; tansu keeps its log in the bucket ``tansu`` there
    home/logs/NAME.log     one log per process

Ports are chosen once per home and reused, so a restart finds its data where it left it.
"""

from __future__ import annotations

import asyncio
import functools
import os
import shutil
import subprocess
import sys
import time
from collections.abc import Callable, Coroutine, Mapping, Sequence
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from types import TracebackType
from typing import Any, TypeVar

import structlog

from sparktrainer.embedded import processes, servers
from sparktrainer.embedded.addresses import StackAddresses
from sparktrainer.embedded.processes import ProcessRecord, ProcessStartError, StackError
from sparktrainer.embedded.servers import (
    PORT_NAMES,
    SEAWEEDFS,
    SERVERS,
    TANSU,
    TANSU_BUCKET,
    WEED_PORTS,
)
from sparktrainer.embedded.services import DEFAULT_SERVICES, ServiceSpec
from sparktrainer.embedded.state import STATE_FILE, StackState, home_lock
from sparktrainer.errors import ConfigurationError, StorageError
from sparktrainer.settings import Settings

log = structlog.get_logger(__name__)
T = TypeVar("T")


def run_coroutine(make: Callable[[], Coroutine[Any, Any, T]]) -> T:
    """Run a coroutine to completion from sync code, even when a loop already runs here."""
    try:
        asyncio.get_running_loop()
    except RuntimeError:
        return asyncio.run(make())
    with ThreadPoolExecutor(1) as pool:
        return pool.submit(lambda: asyncio.run(make())).result()


class EmbeddedStack(StackAddresses):
    """SeaweedFS + tansu (+ the consumer services) under one home folder.

    ``external=True`` runs only the services, against the Kafka and S3 in ``settings``.
    """

    def __init__(
        self,
        home: Path,
        *,
        settings: Settings | None = None,
        ports: Mapping[str, int] | None = None,
        services: Sequence[ServiceSpec] = DEFAULT_SERVICES,
        external: bool = False,
        ready_timeout_s: float = 60.0,
    ) -> None:
        self.home = Path(home).expanduser().resolve()
        self.settings = settings or Settings()
        self.services = tuple(services)
        self.external = external
        self.ready_timeout_s = ready_timeout_s
        self._explicit_ports = dict(ports or {})
        self._children: dict[int, subprocess.Popen[bytes]] = {}
        self._state = StackState.read(self.home)
        if external and not (self.settings.kafka_bootstrap_servers and self.settings.s3_endpoint):
            raise ConfigurationError(
                "external mode needs SPARKTRAINER_KAFKA_BOOTSTRAP_SERVERS and "
                "SPARKTRAINER_S3_ENDPOINT"
            )

    @classmethod
    def load(cls, home: Path, settings: Settings | None = None) -> EmbeddedStack | None:
        """The stack recorded in home/stack.json (running or not), or None if there is none."""
        if not (Path(home).expanduser() / STATE_FILE).is_file():
            return None
        stack = cls(home, settings=settings, services=())
        stack.external = stack._state.mode == "external"
        return stack

    def __repr__(self) -> str:
        return f"EmbeddedStack(home={str(self.home)!r}, mode={self.mode!r})"

    def __enter__(self) -> EmbeddedStack:
        self.start()
        return self

    def __exit__(
        self, et: type[BaseException] | None, e: BaseException | None, tb: TracebackType | None
    ) -> None:
        self.stop()

    # ---- what runs -------------------------------------------------------------------------

    def processes(self) -> dict[str, ProcessRecord]:
        """The processes recorded in stack.json (re-read, so a `down` elsewhere shows), by name."""
        self._state = StackState.read(self.home)
        return dict(self._state.processes)

    def status(self) -> dict[str, bool]:
        """Each recorded process and whether it runs."""
        return {name: self._alive(rec) for name, rec in self.processes().items()}

    def servers_running(self) -> bool:
        """Whether this stack's own SeaweedFS and tansu both run (never, in external mode)."""
        status = self.status()
        return not self.external and all(status.get(name, False) for name in SERVERS)

    def _alive(self, record: ProcessRecord) -> bool:
        child = self._children.get(record.pid)
        return child.poll() is None if child is not None else processes.is_alive(record)

    def _running(self, name: str) -> bool:
        record = self._state.processes.get(name)
        return record is not None and self._alive(record)

    # ---- start -----------------------------------------------------------------------------

    def start(self, *, with_services: bool = True) -> Settings:
        """Start whatever is not running yet and wait until it is ready; returns its settings.

        A process recorded in stack.json that still runs is kept; a dead one is started again.
        If anything fails, what this call started is stopped again.
        """
        started: list[ProcessRecord] = []
        with home_lock(self.home):
            self._state = StackState.read(self.home)
            self._check_mode()
            try:
                if not self.external:
                    self._start_servers(started)
                self.prepare()
                if with_services:
                    self._start_services(started)
            except BaseException:
                self._stop_records(started, timeout_s=10.0)
                for record in started:
                    self._state.processes.pop(record.name, None)
                raise
            finally:
                self._save()
        log.info("stack_ready", home=str(self.home), mode=self.mode,
                 kafka=self.kafka_bootstrap_servers, s3=self.s3_endpoint)  # fmt: skip
        return self.settings_for()

    def prepare(self) -> None:
        """Create the bucket and the topics (idempotent)."""
        from sparktrainer.bus.kafka import ensure_topics
        from sparktrainer.storage.s3 import ObjectStore

        settings = self.settings_for()
        self._until_s3_accepts(ObjectStore.from_settings(settings).ensure_bucket)
        run_coroutine(lambda: ensure_topics(settings, timeout_s=self.ready_timeout_s))

    def restart(self, name: str) -> None:
        """Stop one process and start it again (e.g. the broker, to test durability)."""
        self.stop([name])
        self.start(with_services=name not in SERVERS)

    def _check_mode(self) -> None:
        recorded = self._state.mode
        if recorded != self.mode and any(map(self._alive, self._state.processes.values())):
            raise StackError(
                f"a stack in {recorded} mode already runs in {self.home}; "
                "stop it with `sparktrainer down` first"
            )
        self._state.mode = self.mode

    def _start_servers(self, started: list[ProcessRecord]) -> None:
        fresh = not self._state.ports and not self._explicit_ports
        for attempt in range(3):
            self._assign_ports()
            try:
                self._start_seaweedfs(started)
                self._start_tansu(started)
                return
            except (ProcessStartError, _PortsBusy) as e:
                # A new home only: another stack may have taken a port between pick and bind.
                clash = isinstance(e, _PortsBusy) or "address already in use" in str(e).lower()
                if not (fresh and clash and attempt < 2):
                    raise
                log.warning("stack_port_race", attempt=attempt)
                self._stop_records(started, timeout_s=10.0)
                started.clear()
                self._state.ports = {}
                shutil.rmtree(self.home / "s3", ignore_errors=True)

    def _assign_ports(self) -> None:
        ports = self.ports
        missing = [name for name in PORT_NAMES if name not in ports]
        if missing:
            ports |= processes.pick_ports(missing, with_grpc=WEED_PORTS)
        self._state.ports = ports
        self._save()

    def _check_ports_free(self, names: Sequence[str]) -> None:
        busy = processes.busy_ports({n: self.ports[n] for n in names}, with_grpc=WEED_PORTS)
        if busy:
            raise _PortsBusy(
                f"ports {', '.join(busy)} of the stack in {self.home} are held by another "
                "program; stop that program and start again (SeaweedFS keeps its data under "
                "its ports, so the stack keeps them too)"
            )

    def _start_seaweedfs(self, started: list[ProcessRecord]) -> None:
        if self._running(SEAWEEDFS):
            return
        self._check_ports_free(WEED_PORTS)
        weed = servers.weed_binary(self.settings.embedded_bin_dir)
        if weed is None:
            raise ConfigurationError(servers.missing_message(self.settings.embedded_bin_dir))
        (self.home / "s3").mkdir(parents=True, exist_ok=True)
        argv = servers.weed_argv(weed, self.home / "s3", self.ports)
        record = self._spawn(SEAWEEDFS, argv, servers.server_env(self.credentials()), started)
        self._wait(
            record, "S3 answers HTTP", lambda: processes.http_answers(self.s3_endpoint + "/")
        )
        # `-bucket` creates tansu's bucket in the background; the broker needs it at start.
        from sparktrainer.storage.s3 import ObjectStore

        tansu_bucket = {"s3_bucket": TANSU_BUCKET, "s3_retry_attempts": 1}
        store = ObjectStore.from_settings(self.settings_for().model_copy(update=tansu_bucket))
        self._until_s3_accepts(store.ensure_bucket)

    def _start_tansu(self, started: list[ProcessRecord]) -> None:
        if self._running(TANSU):
            return
        self._check_ports_free(["kafka"])
        tansu = servers.tansu_binary(self.settings.embedded_bin_dir)
        if tansu is None:
            raise ConfigurationError(servers.missing_message(self.settings.embedded_bin_dir))
        argv = servers.tansu_argv(tansu, self.ports["kafka"])
        env = servers.tansu_env(self.credentials(), self.s3_endpoint, self.settings.s3_region)
        record = self._spawn(TANSU, argv, env, started)
        kafka_port = self.ports["kafka"]
        self._wait(record, "Kafka port open", lambda: processes.port_open("127.0.0.1", kafka_port))

    def _start_services(self, started: list[ProcessRecord]) -> None:
        env = {**os.environ, **self.env(), "SPARKTRAINER_HOME": str(self.home),
               "PYTHONUNBUFFERED": "1"}  # fmt: skip
        pending = [
            (spec, self._spawn(spec.name, [sys.executable, *spec.args],
                               {**env, **self._service_ports(spec)}, started))
            for spec in self.services
            if not self._running(spec.name)
        ]  # fmt: skip
        for spec, record in pending:  # they boot side by side; wait for each in turn
            ready = functools.partial(_service_ready, spec, record)
            if spec.http_ready and spec.ports:
                url = f"http://127.0.0.1:{self.ports[spec.ports[0][0]]}{spec.http_ready}"
                ready = functools.partial(processes.http_answers, url)
            self._wait(record, "a ready line in its log", ready, spec.ready_timeout_s)

    def _service_ports(self, spec: ServiceSpec) -> dict[str, str]:
        """The variables telling a service its ports: set in the environment, or picked once."""
        out = {}
        for name, variable in spec.ports:
            given = os.environ.get(variable, "")
            if given.isdigit():
                self._state.ports[name] = int(given)
            elif name not in self.ports:
                self._state.ports |= processes.pick_ports([name])
            out[variable] = str(self.ports[name])
        self._save()
        return out

    def _spawn(
        self, name: str, argv: list[str], env: dict[str, str], started: list[ProcessRecord]
    ) -> ProcessRecord:
        child, record = processes.spawn(name, argv, env, self.logs_dir / f"{name}.log")
        self._children[record.pid] = child
        self._state.processes[name] = record
        self._save()  # at once, so `down` finds the process even if we die next
        started.append(record)
        log.info("stack_process_started", name=name, pid=record.pid, log=record.log)
        return record

    def _wait(
        self, record: ProcessRecord, what: str, check: Callable[[], bool], timeout_s: float = 0
    ) -> None:
        child = self._children.get(record.pid)
        processes.wait_until(what, check, record, child, timeout_s or self.ready_timeout_s)

    def _until_s3_accepts(self, action: Callable[[], None]) -> None:
        # Right after start SeaweedFS may refuse the keys until its IAM has loaded them.
        deadline = time.monotonic() + self.ready_timeout_s
        while True:
            try:
                action()
                return
            except StorageError:
                if time.monotonic() > deadline:
                    raise
                time.sleep(0.2)

    # ---- stop ------------------------------------------------------------------------------

    def stop(self, names: Sequence[str] | None = None, timeout_s: float = 15.0) -> list[str]:
        """Stop the services, then tansu, then SeaweedFS (or only names); returns those that ran."""
        with home_lock(self.home):
            self._state = StackState.read(self.home)
            chosen = [r for n, r in self._state.processes.items() if names is None or n in names]
            running = [r.name for r in chosen if self._alive(r)]
            # Forget them first: a foreground `up` watching this home then sees a `down`,
            # not a crash, when its processes go away.
            for record in chosen:
                del self._state.processes[record.name]
            self._save()
            self._stop_records(chosen, timeout_s)
        if running:
            log.info("stack_stopped", home=str(self.home), processes=running)
        return running

    def _stop_records(self, records: Sequence[ProcessRecord], timeout_s: float) -> None:
        # Consumers first (they may still be writing), then the broker, then its storage.
        order = [[r for r in records if r.name not in SERVERS]]
        order += [[r for r in records if r.name == server] for server in (TANSU, SEAWEEDFS)]
        for group in order:
            killed = processes.stop_processes(group, self._children, timeout_s)
            if killed:
                log.warning("stack_process_killed", processes=killed, timeout_s=timeout_s)
        for record in records:
            self._children.pop(record.pid, None)

    def _save(self) -> None:
        if self.ports or self.external:
            self._state.kafka_bootstrap_servers = self.kafka_bootstrap_servers
            self._state.s3_endpoint = self.s3_endpoint
        self._state.write(self.home)


class _PortsBusy(StackError):
    """A port of the stack is held by another program."""


def _service_ready(spec: ServiceSpec, record: ProcessRecord) -> bool:
    return spec.ready(processes.read_log(record))
