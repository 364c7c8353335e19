# ruff: noqa: E402 - imports follow the sys.path set-up that lets this run as a script
"""`sparktrainer submit`: process start -> the first byte of its record on the wire, p50/p99.

    python bench/cli_start.py [--runs 30]

Starts its own in-memory tansu behind a tap: a TCP relay in this process that every client
connection goes through (the broker advertises the tap's address) and that stamps, on this
process's clock, the arrival of the first bytes of each Produce request (Kafka API key 0). Each
run spawns a new process and times from just before the spawn to that stamp, rounds
alternating between:

- the CLI: ``python -m sparktrainer.cli.main submit JOB --json`` (the guide's first job), as a
  user runs it: parse, read and check the job, settings, the CloudEvent, connect, send;
- the floor: a fresh ``python -c`` that imports aiokafka, reads the same file and sends its
  bytes to the same topic with a producer of its own (what any Python process that sends one
  record with aiokafka pays, with no checks and no envelope).

``--compare-root DIR`` adds a third side: the CLI of another checkout (before a change).
Each side's CPU (user + system, from the reaped child's rusage) is shown beside its wall time;
the machine's 1-minute load average is kept from before and after.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import resource
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))

from benchkit import GOOD_JOB, ROOT, emit, free_port, percentile, start_tansu

from sparktrainer.bus.kafka import ensure_topics
from sparktrainer.contracts.topics import JOBS_SUBMITTED
from sparktrainer.settings import Settings

CLOCK = time.perf_counter
PRODUCE = 0  # Kafka API key of a Produce request
GOAL_MS = 150.0
FLOOR = """
import sys
from aiokafka import AIOKafkaProducer
import asyncio
async def main():
    p = AIOKafkaProducer(bootstrap_servers=sys.argv[1], acks="all", linger_ms=2)
    await p.start()
    try:
        await p.send_and_wait(sys.argv[2], open(sys.argv[3], "rb").read(), key=b"floor")
    finally:
        await p.stop()
asyncio.run(main())
"""


class Tap:
    """A TCP relay to the broker that stamps the first bytes of every Produce request."""

    def __init__(self, upstream_port: int) -> None:
        self.upstream_port = upstream_port
        self.stamps: list[float] = []
        self.produced = asyncio.Event()

    async def serve(self, port: int) -> asyncio.Server:
        """Listen on ``port`` (what the broker advertises)."""
        return await asyncio.start_server(self._connection, "127.0.0.1", port)

    async def _connection(self, client_r: Any, client_w: Any) -> None:
        broker_r, broker_w = await asyncio.open_connection("127.0.0.1", self.upstream_port)
        await asyncio.gather(self._requests(client_r, broker_w), self._pipe(broker_r, client_w),
                             return_exceptions=True)  # fmt: skip
        for w in (client_w, broker_w):
            w.close()

    async def _requests(self, reader: Any, writer: Any) -> None:
        """Client -> broker, reading the frames: size (4 bytes), API key (2 bytes), ..."""
        pending, skip = b"", 0
        while data := await reader.read(1 << 16):
            now = CLOCK()
            writer.write(data)
            view = data
            while view:
                if skip:
                    taken = min(skip, len(view))
                    skip, view = skip - taken, view[taken:]
                    continue
                pending, view = pending + view, b""
                if len(pending) < 6:
                    break
                size = int.from_bytes(pending[:4], "big")
                if int.from_bytes(pending[4:6], "big") == PRODUCE:
                    self.stamps.append(now)
                    self.produced.set()
                left = size + 4 - len(pending)  # < 0: the next frame began in this chunk
                if left >= 0:
                    skip, pending = left, b""
                else:
                    view, pending = pending[size + 4 :], b""
            await writer.drain()
        writer.close()

    @staticmethod
    async def _pipe(reader: Any, writer: Any) -> None:
        while data := await reader.read(1 << 16):
            writer.write(data)
            await writer.drain()
        writer.close()


def children_cpu_s() -> float:
    usage = resource.getrusage(resource.RUSAGE_CHILDREN)
    return usage.ru_utime + usage.ru_stime


async def one_run(tap: Tap, argv: list[str], env: dict[str, str]) -> tuple[float, float]:
    """Spawn -> first Produce bytes at the tap (ms), and the process's CPU (ms)."""
    tap.produced.clear()
    tap.stamps.clear()
    cpu0, t0 = children_cpu_s(), CLOCK()
    # ``-m`` puts the working directory first on sys.path: run in the checkout being timed.
    proc = await asyncio.create_subprocess_exec(*argv, env=env, cwd=env["PYTHONPATH"],
                                                stdout=subprocess.DEVNULL,
                                                stderr=subprocess.PIPE)  # fmt: skip
    _, err = await asyncio.wait_for(proc.communicate(), 120)
    if proc.returncode != 0 or not tap.stamps:
        raise RuntimeError(f"{argv[:4]} exited {proc.returncode}: {err.decode()[-800:]}")
    return (tap.stamps[0] - t0) * 1000, (children_cpu_s() - cpu0) * 1000


def summary(runs: list[tuple[float, float]]) -> dict[str, Any]:
    walls = [w for w, _ in runs]
    return {
        "first_byte_ms": [round(w, 1) for w in walls],
        "p50_ms": round(percentile(walls, 0.5), 1),
        "p99_ms": round(percentile(walls, 0.99), 1),
        "cpu_ms_median": round(statistics.median(c for _, c in runs), 1),
    }


async def run(args: argparse.Namespace) -> dict[str, Any]:
    """The alternating rounds against a tapped in-memory tansu."""
    broker_port, tap_port = free_port(), free_port()
    proc = start_tansu(broker_port, advertised_port=tap_port)
    tap = Tap(broker_port)
    server = await tap.serve(tap_port)
    home = Path(tempfile.mkdtemp(prefix="cli-start-"))
    try:
        servers = f"127.0.0.1:{tap_port}"
        await ensure_topics(Settings(kafka_bootstrap_servers=servers), (JOBS_SUBMITTED,))
        job = home / "job.json"
        job.write_text(json.dumps(GOOD_JOB))
        env = {k: v for k, v in os.environ.items() if not k.startswith("SPARKTRAINER_")}
        # Both servers given, as on a cluster (S3 is never contacted by a submit).
        env |= {
            "SPARKTRAINER_KAFKA_BOOTSTRAP_SERVERS": servers,
            "PYTHONPATH": str(ROOT),
            "SPARKTRAINER_S3_ENDPOINT": "http://127.0.0.1:9",
            "SPARKTRAINER_HOME": str(home),
        }
        cli = [sys.executable, "-m", "sparktrainer.cli.main", "submit", str(job), "--json"]
        floor = [sys.executable, "-c", FLOOR, servers, JOBS_SUBMITTED, str(job)]
        sides: dict[str, tuple[list[str], dict[str, str]]] = {
            "cli": (cli, env),
            "floor": (floor, env),
        }
        if args.compare_root:  # another checkout's CLI (e.g. main before a change), same rounds
            sides["compared"] = (cli, {**env, "PYTHONPATH": str(args.compare_root)})
        load_before = os.getloadavg()[0]
        for argv, side_env in sides.values():  # warm-up: the OS's file cache, tansu's topic
            await one_run(tap, argv, side_env)
        runs: dict[str, list[tuple[float, float]]] = {name: [] for name in sides}
        for _ in range(args.runs):
            for name, (argv, side_env) in sides.items():
                runs[name].append(await one_run(tap, argv, side_env))
        cli_s, floor_s = summary(runs["cli"]), summary(runs["floor"])
        compared: dict[str, Any] = {}
        if args.compare_root:
            compared["compared"] = {"root": str(args.compare_root), **summary(runs["compared"])}
        return {
            "runs": args.runs,
            "cli": cli_s,
            "floor": floor_s,
            **compared,
            "over_floor_p50_ms": round(cli_s["p50_ms"] - floor_s["p50_ms"], 1),
            "goal_p50_ms": GOAL_MS,
            "load_before": round(load_before, 2),
            "load_after": round(os.getloadavg()[0], 2),
        }
    finally:
        server.close()
        proc.terminate()
        proc.wait(10)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=30, help="runs a side, alternating")
    parser.add_argument(
        "--compare-root", type=Path, help="also time this checkout's CLI (a third side)"
    )
    emit(asyncio.run(run(parser.parse_args())))


if __name__ == "__main__":
    main()
