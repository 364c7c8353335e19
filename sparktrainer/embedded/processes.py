"""Child processes of the embedded stack: spawn, recognise after a restart, wait for, stop."""

from __future__ import annotations

import contextlib
import os
import random
import signal
import socket
import subprocess
import time
import urllib.error
import urllib.request
from collections.abc import Callable, Mapping, Sequence
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

from sparktrainer.errors import SparkTrainerError

# Each SeaweedFS component has a gRPC port; parts of `weed mini` (the admin worker) dial
# ``http port + 10000`` whatever the flags say, so we keep that offset for every one.
GRPC_OFFSET = 10_000
_LOWEST_PORT = 10_000


class StackError(SparkTrainerError):
    """The embedded stack could not start or stop; the message says what to do."""


class ProcessStartError(StackError):
    """A child process did not come up; the message carries the tail of its log."""


@dataclass(frozen=True)
class ProcessRecord:
    """A process we started, as written to stack.json: enough to find it again later."""

    name: str
    pid: int
    start_time: str | None  # from /proc: tells our process from a later one with the same pid
    log: str
    log_offset: int = 0  # where this run's lines begin in the log

    def to_json(self) -> dict[str, Any]:
        """A JSON-ready dict."""
        return asdict(self)

    @classmethod
    def from_json(cls, data: Mapping[str, Any]) -> ProcessRecord:
        """Rebuild from stack.json, ignoring fields a newer version added."""
        return cls(
            name=str(data["name"]),
            pid=int(data["pid"]),
            start_time=data.get("start_time"),
            log=str(data.get("log", "")),
            log_offset=int(data.get("log_offset", 0)),
        )


def _proc_stat(pid: int) -> list[str] | None:
    try:
        raw = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return None
    # The command name (field 2) may contain spaces; everything after its ')' is plain.
    return raw[raw.rfind(")") + 2 :].split()


def process_start_time(pid: int) -> str | None:
    """The kernel's start time of a process (clock ticks since boot), or None off Linux."""
    fields = _proc_stat(pid)
    return fields[19] if fields and len(fields) > 19 else None


def is_alive(record: ProcessRecord) -> bool:
    """Whether the recorded process still runs (and is not a later process reusing its pid)."""
    try:
        os.kill(record.pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        pass  # exists, owned by someone else: the start time below decides
    fields = _proc_stat(record.pid)
    if fields is None:
        return not Path("/proc").is_dir()  # no procfs: trust kill(0)
    if fields[0] in ("Z", "X"):
        return False
    return record.start_time is None or fields[19] == record.start_time


def spawn(
    name: str, argv: Sequence[str], env: Mapping[str, str], log_path: Path, cwd: Path | None = None
) -> tuple[subprocess.Popen[bytes], ProcessRecord]:
    """Start a process in its own session, output appended to its log file."""
    log_path.parent.mkdir(parents=True, exist_ok=True)
    with log_path.open("ab") as log:
        log.write(f"\n--- {time.strftime('%Y-%m-%dT%H:%M:%S')} starting {name}\n".encode())
        log.flush()
        offset = log.tell()
        # A session of its own: Ctrl-C in the terminal reaches `sparktrainer up` only, which
        # then stops every child in order; and the child outlives `up --detach`.
        proc = subprocess.Popen(
            list(argv),
            env=dict(env),
            cwd=cwd,
            stdin=subprocess.DEVNULL,
            stdout=log,
            stderr=subprocess.STDOUT,
            start_new_session=True,
            close_fds=True,
        )
    record = ProcessRecord(name, proc.pid, process_start_time(proc.pid), str(log_path), offset)
    return proc, record


def _signal(record: ProcessRecord, sig: signal.Signals) -> None:
    # SIGTERM goes to the process alone, so it can shut its own children down in order (as
    # `docker stop` does); SIGKILL goes to its whole process group, so nothing is left behind.
    with contextlib.suppress(ProcessLookupError, PermissionError):
        if sig == signal.SIGKILL and os.getpgid(record.pid) == record.pid:
            os.killpg(record.pid, sig)
            return
    with contextlib.suppress(ProcessLookupError):
        os.kill(record.pid, sig)


def stop_processes(
    records: Sequence[ProcessRecord],
    children: Mapping[int, subprocess.Popen[bytes]],
    timeout_s: float = 15.0,
) -> list[str]:
    """SIGTERM all, wait up to timeout_s, SIGKILL the rest; returns the names that were killed."""

    def alive(r: ProcessRecord) -> bool:
        child = children.get(r.pid)
        if child is not None:
            return child.poll() is None  # poll() also reaps our own child
        return is_alive(r)

    def wait(pending: list[ProcessRecord], seconds: float) -> list[ProcessRecord]:
        deadline = time.monotonic() + seconds
        while pending and time.monotonic() < deadline:
            time.sleep(0.1)
            pending = [r for r in pending if alive(r)]
        return pending

    running = [r for r in records if alive(r)]
    for record in running:
        _signal(record, signal.SIGTERM)
    stubborn = wait(running, timeout_s)
    for record in stubborn:
        _signal(record, signal.SIGKILL)
    wait(stubborn, 5.0)  # SIGKILL cannot be refused, but the kernel takes a moment
    return [r.name for r in stubborn]


def read_log(record: ProcessRecord, max_bytes: int = 1 << 20) -> str:
    """This run's part of a process's log (the lines after its start offset)."""
    try:
        with open(record.log, "rb") as f:
            f.seek(record.log_offset)
            return f.read(max_bytes).decode(errors="replace")
    except OSError:
        return ""


def log_tail(record: ProcessRecord, lines: int = 20) -> str:
    """The last lines of this run's log, for error messages."""
    return "\n".join(read_log(record).splitlines()[-lines:])


def port_open(host: str, port: int, timeout_s: float = 0.5) -> bool:
    """Whether something accepts TCP connections on host:port."""
    try:
        with socket.create_connection((host, port), timeout=timeout_s):
            return True
    except OSError:
        return False


# The stack is on loopback: an http_proxy in the environment must not route the probe away.
_NO_PROXY = urllib.request.build_opener(urllib.request.ProxyHandler({}))


def http_answers(url: str, timeout_s: float = 1.0) -> bool:
    """Whether an HTTP server answers at url (any status counts, e.g. S3's 403 on `/`)."""
    try:
        with _NO_PROXY.open(url, timeout=timeout_s):
            return True
    except urllib.error.HTTPError:
        return True
    except (urllib.error.URLError, OSError):
        return False


def wait_until(
    what: str,
    check: Callable[[], bool],
    record: ProcessRecord,
    child: subprocess.Popen[bytes] | None,
    timeout_s: float,
) -> None:
    """Poll check() until it holds; fail early, with the log's tail, if the process exits."""
    deadline = time.monotonic() + timeout_s
    while not check():
        exited = child.poll() is not None if child is not None else not is_alive(record)
        if exited:
            raise ProcessStartError(
                f"{record.name} exited before it was ready ({what}); log {record.log}:\n"
                f"{log_tail(record)}"
            )
        if time.monotonic() > deadline:
            raise ProcessStartError(
                f"{record.name} was not ready ({what}) after {timeout_s:.0f} s; log {record.log}:\n"
                f"{log_tail(record)}"
            )
        time.sleep(0.1)


def _bindable(port: int) -> bool:
    if not 0 < port < 65536:
        return False
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        # As the servers do: then a TIME_WAIT left by the last run does not count, a listener does.
        s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            s.bind(("127.0.0.1", port))
        except OSError:
            return False
    return True


def _ephemeral_low() -> int:
    try:
        return int(Path("/proc/sys/net/ipv4/ip_local_port_range").read_text().split()[0])
    except (OSError, ValueError, IndexError):
        return 32768


def pick_ports(names: Sequence[str], with_grpc: Sequence[str] = ()) -> dict[str, int]:
    """Free loopback ports, one per name; names in with_grpc also get port + GRPC_OFFSET free.

    Ports come from below the kernel's ephemeral range, so an outgoing connection cannot
    sit on them when the stack restarts later on the same ports.
    """
    high = _ephemeral_low() - GRPC_OFFSET - 1
    if high - _LOWEST_PORT < 1000:
        raise ProcessStartError(
            "The ephemeral port range starts too low to place the stack's ports below it; "
            "pass explicit ports to EmbeddedStack."
        )
    chosen: dict[str, int] = {}
    taken: set[int] = set()
    rng = random.SystemRandom()
    for name in names:
        for _ in range(1000):
            port = rng.randint(_LOWEST_PORT, high)
            wanted = [port, port + GRPC_OFFSET] if name in with_grpc else [port]
            if taken.isdisjoint(wanted) and all(_bindable(p) for p in wanted):
                chosen[name] = port
                taken.update(wanted)
                break
        else:
            raise ProcessStartError(f"no free loopback port found for {name}")
    return chosen


def busy_ports(ports: Mapping[str, int], with_grpc: Sequence[str] = ()) -> list[str]:
    """Which of the named ports (and their gRPC twins) something else already holds."""
    busy = []
    for name, port in ports.items():
        wanted = [port, port + GRPC_OFFSET] if name in with_grpc else [port]
        busy += [f"{name}={p}" for p in wanted if not _bindable(p)]
    return busy
