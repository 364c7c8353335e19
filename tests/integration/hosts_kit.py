"""Test hosts in network namespaces: a server host (tansu + SeaweedFS) and trainer hosts.

Each trainer host is joined to the server host by a veth pair of its own; the servers listen on
an address on the server host's loopback, routed from each trainer host over its own link, so
cutting one link (``cut``) leaves the other host's path whole. Every address lives inside the
namespaces made here (10.231.0.0/16), nothing is added to the machine's own. The test's own
clients run in a thread that entered the server host (``in_namespace``: a network namespace
is per thread, and threads and processes started from it inherit it). ``close`` kills every
process started here and deletes every namespace, whatever state the test left.

``start_servers`` and ``start_trainer`` put the embedded servers and trainer processes on them
(``tests/integration/test_hosts.py`` and ``bench/chaos_bench.py`` both use them).
"""

from __future__ import annotations

import asyncio
import contextlib
import ctypes
import os
import shutil
import signal
import subprocess
import sys
import threading
import time
import uuid
from collections.abc import Callable, Coroutine
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, TypeVar

from pydantic import SecretStr

from sparktrainer.bus.kafka import ensure_topics
from sparktrainer.embedded import servers
from sparktrainer.embedded.processes import port_open
from sparktrainer.settings import Settings
from sparktrainer.storage.s3 import ObjectStore

T = TypeVar("T")
REPO = Path(__file__).resolve().parents[2]
CLONE_NEWNET = 0x40000000
SERVER_IP = "10.231.0.1"  # on the server host's loopback
NETNS_DIR = Path("/var/run/netns")
# Fixed ports: each server host is a network namespace of its own, so they never clash.
PORTS = {"s3": 18333, "master": 19333, "volume": 18080, "filer": 18888, "admin": 13646}
KAFKA_PORT = 19092


def why_no_namespaces() -> str | None:
    """Why this machine cannot make test hosts (None: it can): root and ``ip netns`` needed."""
    if os.geteuid() != 0:
        return "needs root to make network namespaces (ip netns); CI runs as root"
    if shutil.which("ip") is None:
        return "no `ip` command (iproute2) to make network namespaces"
    probe = f"st-probe-{uuid.uuid4().hex[:6]}"
    made = subprocess.run(["ip", "netns", "add", probe], capture_output=True, text=True, timeout=10)
    if made.returncode != 0:
        return f"`ip netns add` fails here: {made.stderr.strip()[:200]}"
    subprocess.run(["ip", "netns", "del", probe], capture_output=True, timeout=10)
    return None


def _ip(*args: str) -> None:
    done = subprocess.run(["ip", *args], capture_output=True, text=True, timeout=10)
    if done.returncode != 0:
        raise RuntimeError(f"ip {' '.join(args)}: {done.stderr.strip()[:300]}")


@dataclass
class Hosts:
    """A server host and trainer hosts; ``close`` undoes everything."""

    tag: str = field(default_factory=lambda: uuid.uuid4().hex[:6])
    namespaces: list[str] = field(default_factory=list)
    links: dict[str, tuple[str, str]] = field(default_factory=dict)  # host -> (netns, its dev)
    procs: list[subprocess.Popen[bytes]] = field(default_factory=list)

    @property
    def server(self) -> str:
        return f"st-srv-{self.tag}"

    def make_server(self) -> None:
        """The server host, with ``SERVER_IP`` on its loopback."""
        self._namespace(self.server)
        _ip("-n", self.server, "addr", "add", f"{SERVER_IP}/32", "dev", "lo")

    def add_host(self, name: str) -> str:
        """A trainer host with its own link to the server host; returns its namespace."""
        index = len(self.links) + 1
        ns, dev, peer = f"st-{name}-{self.tag}", f"st{index}h{self.tag}", f"st{index}s{self.tag}"
        self._namespace(ns)
        _ip(
            "-n", ns, "link", "add", dev, "type", "veth", "peer", "name", peer, "netns", self.server
        )
        host_ip, server_side = f"10.231.{index}.2", f"10.231.{index}.1"
        _ip("-n", self.server, "addr", "add", f"{server_side}/24", "dev", peer)
        _ip("-n", self.server, "link", "set", peer, "up")
        _ip("-n", ns, "addr", "add", f"{host_ip}/24", "dev", dev)
        _ip("-n", ns, "link", "set", dev, "up")
        _ip("-n", ns, "route", "add", f"{SERVER_IP}/32", "via", server_side)
        self.links[name] = (ns, dev)
        return ns

    def cut(self, name: str) -> None:
        """Take the host's end of its link down: its connections go silent, no reset is sent."""
        ns, dev = self.links[name]
        _ip("-n", ns, "link", "set", dev, "down")

    def mend(self, name: str) -> None:
        """Bring the host's link back (its route goes with a link that goes down)."""
        ns, dev = self.links[name]
        _ip("-n", ns, "link", "set", dev, "up")
        index = list(self.links).index(name) + 1
        with contextlib.suppress(RuntimeError):  # still there on kernels that keep it
            _ip("-n", ns, "route", "add", f"{SERVER_IP}/32", "via", f"10.231.{index}.1")

    def spawn(
        self, argv: list[str], env: dict[str, str], log: Path, netns: str | None = None
    ) -> subprocess.Popen[bytes]:
        """Start a process in its own process group (in ``netns``, else where the caller is),
        its output to ``log``; ``close`` kills it."""
        prefix = ["ip", "netns", "exec", netns] if netns else []
        with log.open("ab") as out:
            proc = subprocess.Popen(
                [*prefix, *argv], env=env, stdout=out, stderr=subprocess.STDOUT,
                stdin=subprocess.DEVNULL, start_new_session=True,
            )  # fmt: skip
        self.procs.append(proc)
        return proc

    def close(self) -> None:
        """Stop every process started here (SIGTERM, then SIGKILL to its whole group after a
        few seconds), then delete every namespace. Safe to call again."""
        for proc in self.procs:
            with contextlib.suppress(ProcessLookupError):
                os.kill(proc.pid, signal.SIGTERM)
        for proc in self.procs:
            with contextlib.suppress(subprocess.TimeoutExpired):
                proc.wait(3)
            with contextlib.suppress(ProcessLookupError):
                os.killpg(proc.pid, signal.SIGKILL)
            with contextlib.suppress(subprocess.TimeoutExpired):
                proc.wait(10)
        for ns in reversed(self.namespaces):
            subprocess.run(["ip", "netns", "del", ns], capture_output=True, timeout=10)
        self.namespaces.clear()

    def _namespace(self, ns: str) -> None:
        _ip("netns", "add", ns)
        self.namespaces.append(ns)
        _ip("-n", ns, "link", "set", "lo", "up")


def in_namespace(netns: str, main: Callable[[], Coroutine[Any, Any, T]], timeout_s: float) -> T:
    """Run ``main()`` to its end on an event loop in a thread that entered ``netns``."""
    result: list[T] = []
    failure: list[BaseException] = []

    def run() -> None:
        try:
            libc = ctypes.CDLL(None, use_errno=True)
            fd = os.open(NETNS_DIR / netns, os.O_RDONLY)
            try:
                if libc.setns(fd, CLONE_NEWNET) != 0:
                    raise OSError(ctypes.get_errno(), f"setns into {netns}")
            finally:
                os.close(fd)
            result.append(asyncio.run(main()))
        except BaseException as e:  # handed to the caller's thread
            failure.append(e)

    thread = threading.Thread(target=run, name=f"in-{netns}", daemon=True)
    thread.start()
    thread.join(timeout_s)
    if thread.is_alive():
        raise AssertionError(f"the scenario in {netns} ran past {timeout_s} s")
    if failure:
        raise failure[0]
    return result[0]


def python(*args: str) -> list[str]:
    """This Python, running ``args``."""
    return [sys.executable, *args]


def host_settings(home: Path, keys: servers.Credentials) -> Settings:
    """Settings that reach the servers ``start_servers`` put on the server host."""
    return Settings(
        home=home,
        kafka_bootstrap_servers=f"{SERVER_IP}:{KAFKA_PORT}",
        s3_endpoint=f"http://{SERVER_IP}:{PORTS['s3']}",
        s3_access_key=SecretStr(keys.access_key),
        s3_secret_key=SecretStr(keys.secret_key),
    )


def trainer_env(settings: Settings, home: Path, **more: str) -> dict[str, str]:
    """A trainer's environment: these servers, short group and S3 timeouts (a cut link is
    noticed in seconds), ``SPARKTRAINER_<KEY>`` for each of ``more``."""
    assert settings.s3_access_key and settings.s3_secret_key
    return {
        **os.environ,
        "PYTHONPATH": str(REPO),
        "SPARKTRAINER_HOME": str(home),
        "SPARKTRAINER_KAFKA_BOOTSTRAP_SERVERS": settings.kafka_ready(),
        "SPARKTRAINER_S3_ENDPOINT": str(settings.s3_endpoint),
        "SPARKTRAINER_S3_ACCESS_KEY": settings.s3_access_key.get_secret_value(),
        "SPARKTRAINER_S3_SECRET_KEY": settings.s3_secret_key.get_secret_value(),
        "SPARKTRAINER_KAFKA_SESSION_TIMEOUT_MS": "1500",
        "SPARKTRAINER_KAFKA_HEARTBEAT_INTERVAL_MS": "300",
        "SPARKTRAINER_TRAINER_HEARTBEAT_S": "0.3",
        "SPARKTRAINER_PROGRESS_EVERY_S": "0.1",
        "SPARKTRAINER_S3_CONNECT_TIMEOUT_S": "1",
        "SPARKTRAINER_S3_READ_TIMEOUT_S": "2",
        "SPARKTRAINER_S3_RETRY_ATTEMPTS": "3",
        "SPARKTRAINER_S3_RETRY_BACKOFF_S": "0.2",
        "SPARKTRAINER_LOG_LEVEL": "INFO",
        **{f"SPARKTRAINER_{key.upper()}": value for key, value in more.items()},
    }


async def until(
    what: str, ready: Callable[[], bool], proc: subprocess.Popen[bytes], timeout_s: float = 60
) -> None:
    """Wait for ``ready()`` (run in a thread), failing if ``proc`` exits or past ``timeout_s``."""
    deadline = time.monotonic() + timeout_s
    while not await asyncio.to_thread(ready):
        assert proc.poll() is None, f"{what}: its process exited with {proc.returncode}"
        assert time.monotonic() < deadline, f"{what} not ready after {timeout_s} s"
        await asyncio.sleep(0.1)


async def start_servers(hosts: Hosts, home: Path) -> Settings:
    """SeaweedFS and tansu on the server host (run from a thread that entered it), the bucket
    and the topics made; their settings."""
    keys = servers.load_credentials(home)
    weed, tansu = servers.weed_binary(), servers.tansu_binary()
    assert weed and tansu, servers.missing_message()
    argv = servers.weed_argv(weed, home / "s3", PORTS, host=SERVER_IP)
    weed_proc = hosts.spawn(argv, servers.server_env(keys), home / "weed.log")
    await until("SeaweedFS", lambda: port_open(SERVER_IP, PORTS["s3"]), weed_proc)
    settings = host_settings(home, keys)
    s3 = f"http://{SERVER_IP}:{PORTS['s3']}"
    tansu_proc = hosts.spawn(servers.tansu_argv(tansu, KAFKA_PORT, host=SERVER_IP),
                             servers.tansu_env(keys, s3, settings.s3_region),
                             home / "tansu.log")  # fmt: skip
    await until("tansu", lambda: port_open(SERVER_IP, KAFKA_PORT), tansu_proc)
    await asyncio.to_thread(ObjectStore.from_settings(settings).ensure_bucket)
    await ensure_topics(settings, timeout_s=60)
    return settings


async def start_trainer(
    hosts: Hosts, name: str, settings: Settings, home: Path, group: str, **more: str
) -> subprocess.Popen[bytes]:
    """A trainer process (``--group-id group``) on a new trainer host ``name``, its home and
    log under ``home``, once it says READY; ``more`` as in ``trainer_env``."""
    ns = hosts.add_host(name)
    mine = home / name
    mine.mkdir()
    log = home / f"{name}.log"
    proc = hosts.spawn(python("-m", "consumers.trainer", "--group-id", group),
                       trainer_env(settings, mine, **more), log, netns=ns)  # fmt: skip
    await until(f"trainer {name}", lambda: b"READY trainer" in log.read_bytes(), proc, 180)
    return proc
