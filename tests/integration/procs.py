"""Consumer processes for tests: start one as a deployment would, and kill it hard."""

from __future__ import annotations

import asyncio
import collections
import contextlib
import os
import signal
import subprocess
import sys


async def start_consumer(
    module: str, group_id: str | None, env: dict[str, str] | None = None
) -> subprocess.Popen[bytes]:
    """``python -m consumers.NAME [--group-id G]`` in its own process group, once it says READY."""
    ready = f"READY {module.rsplit('.', 1)[-1]}".encode()
    group = ["--group-id", group_id] if group_id is not None else []
    proc = subprocess.Popen(  # noqa: ASYNC220 - starting is instant; reading is offloaded
        [sys.executable, "-m", module, *group],
        env=env if env is not None else {**os.environ, "SPARKTRAINER_LOG_LEVEL": "WARNING"},
        stderr=subprocess.PIPE,
        stdout=subprocess.DEVNULL,
        start_new_session=True,
    )
    assert proc.stderr is not None
    loop = asyncio.get_running_loop()
    while True:
        line = await asyncio.wait_for(loop.run_in_executor(None, proc.stderr.readline), 180)
        if not line:
            raise AssertionError(f"{module} exited early with {proc.wait()}")
        if line.startswith(ready):
            loop.run_in_executor(None, _keep_tail, proc)  # keep draining: never block the child
            return proc


TAILS: dict[int, collections.deque[bytes]] = {}  # pid -> the last lines a consumer logged


def _keep_tail(proc: subprocess.Popen[bytes]) -> None:
    """Drain the consumer's stderr, keeping its last lines for a failing test to show."""
    tail = TAILS.setdefault(proc.pid, collections.deque(maxlen=40))
    assert proc.stderr is not None
    for line in iter(proc.stderr.readline, b""):
        tail.append(line)


def stderr_tail(proc: subprocess.Popen[bytes]) -> str:
    """What the consumer logged last (its log level's lines), for an assertion message."""
    return b"".join(TAILS.get(proc.pid, ())).decode(errors="replace")


def kill_group(proc: subprocess.Popen[bytes]) -> None:
    """SIGKILL a consumer and its children (a trainer's warm worker): its process group."""
    with contextlib.suppress(ProcessLookupError):
        os.killpg(proc.pid, signal.SIGKILL)
    proc.wait()
