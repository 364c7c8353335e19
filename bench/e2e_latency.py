# ruff: noqa: E402 - imports follow the sys.path set-up that lets this run as a script
"""End to end: `sparktrainer submit` -> first training step -> registered model, on the broker.

    python bench/e2e_latency.py                    # starts its own embedded stack
    python bench/e2e_latency.py --from-env --jobs 50 --burst 10

A validator and a trainer run as processes (``python -m consumers.validator|trainer``, as
`sparktrainer up` runs them). Each job is the tiny MLP of ``tiny_job()`` submitted with the
command a user types (``python -m sparktrainer.cli.main submit job.json``, a new process per
job). Its first step is the ``at`` of its first JobProgress (stamped by the worker right after
optimizer step 1) and its registration the ``created_at`` of its ModelRegistered (after every
file is in S3); both against the wall clock read just before the submit command started, on
this machine's one clock. Sequential: one job at a time, ``--jobs`` of them; burst: ``--burst``
submit commands started at once, and the time until the last is registered.

The floor, measured in the same run on the same broker: a raw produce -> fetch round trip
(one record, a group-less reader waiting at the log end). A job crosses the broker twice before
it trains (submitted -> validator -> validated -> trainer) and twice more for its answers.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import subprocess
import sys
import tempfile
import time
import uuid
from pathlib import Path
from typing import Any

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))

from benchkit import ROOT, bench_stack, emit, percentile, stack_env
from validator_bench import commit_group, topic_partitions
from validator_latency import start_service

from sparktrainer.bus.kafka import make_producer
from sparktrainer.bus.reader import LogReader, log_end_offsets
from sparktrainer.contracts.envelope import decode
from sparktrainer.contracts.events import JobFailed, JobProgress, JobRejected, ModelRegistered
from sparktrainer.contracts.topics import (
    JOBS_LIFECYCLE,
    JOBS_REJECTED,
    JOBS_SUBMITTED,
    JOBS_VALIDATED,
    MODELS_REGISTERED,
)
from sparktrainer.settings import Settings

FLOOR_TOPIC = "bench.e2e.floor"


def tiny_job() -> dict[str, Any]:
    """The job both runners run: an MLP on 256 synthetic samples, one epoch."""
    return {"type": "train", "framework": "pytorch", "job_id": f"e2e-{uuid.uuid4().hex[:12]}",
            "config": {"architecture": "custom", "input_size": 32, "output_size": 4,
                       "hidden_layers": [64], "epochs": 1,
                       "data": {"num_samples": 256}}}  # fmt: skip


class Marks:
    """Reads the answer topics from their ends; per job: first step and registration times."""

    def __init__(self, settings: Settings) -> None:
        self.reader = LogReader(settings, fetch_max_wait_ms=10)
        self.first_step: dict[str, float] = {}
        self.registered: dict[str, float] = {}
        self.failed: dict[str, str] = {}
        self._task: asyncio.Task[None] | None = None

    async def __aenter__(self) -> Marks:
        await self.reader.start()
        topics = (JOBS_LIFECYCLE, JOBS_REJECTED, MODELS_REGISTERED)
        await self.reader.assign_at_end(await self.reader.partitions(topics))
        self._task = asyncio.create_task(self._run())
        return self

    async def _run(self) -> None:
        while True:
            for r in await self.reader.read(timeout_ms=100):
                try:
                    e = decode(r.value, r.headers)
                except ValueError:
                    continue
                if isinstance(e, JobProgress) and e.job_id not in self.first_step:
                    self.first_step[e.job_id] = e.at.timestamp()
                elif isinstance(e, ModelRegistered):
                    self.registered[e.job_id] = e.created_at.timestamp()
                elif isinstance(e, JobFailed):
                    self.failed[e.job_id] = e.reason
                elif isinstance(e, JobRejected):
                    self.failed[e.job_id] = "; ".join(e.errors)

    async def ended(self, job_ids: list[str], timeout_s: float = 300.0) -> None:
        deadline = time.monotonic() + timeout_s
        while not all(j in self.registered or j in self.failed for j in job_ids):
            if time.monotonic() > deadline:
                raise TimeoutError(f"jobs not ended after {timeout_s}s")
            await asyncio.sleep(0.01)
        if failed := [self.failed[j] for j in job_ids if j in self.failed]:
            raise RuntimeError(f"{len(failed)} jobs did not register: {failed[0][:300]}")

    async def __aexit__(self, *exc: object) -> None:
        if self._task is not None:
            self._task.cancel()
            await asyncio.gather(self._task, return_exceptions=True)
        await self.reader.stop()


def submit_command(settings: Settings, folder: Path, job: dict[str, Any]) -> subprocess.Popen:
    """Start `sparktrainer submit job.json` as a user would (its own process)."""
    path = folder / f"{job['job_id']}.json"
    path.write_text(json.dumps(job))
    env = {**os.environ, **stack_env(settings), "PYTHONPATH": str(ROOT)}
    return subprocess.Popen([sys.executable, "-m", "sparktrainer.cli.main", "submit", str(path)],
                            cwd=ROOT, env=env, stdout=subprocess.DEVNULL)  # fmt: skip


async def sequential(settings: Settings, marks: Marks, jobs: int, folder: Path) -> dict[str, Any]:
    """One job at a time: submit -> first step, -> registered, and the command's own time."""
    step, done, command = [], [], []
    for _ in range(jobs):
        job = tiny_job()
        submitted = time.time()
        proc = submit_command(settings, folder, job)
        await asyncio.to_thread(proc.wait, 60)
        command.append(time.time() - submitted)
        await marks.ended([job["job_id"]])
        step.append(marks.first_step[job["job_id"]] - submitted)
        done.append(marks.registered[job["job_id"]] - submitted)
    return {"to_first_step_s": spread(step), "to_registered_s": spread(done),
            "submit_command_s": spread(command)}  # fmt: skip


async def burst(settings: Settings, marks: Marks, count: int, folder: Path) -> dict[str, Any]:
    """``count`` submit commands at once; each job's times and the last registration."""
    jobs = [tiny_job() for _ in range(count)]
    submitted = time.time()
    procs = [submit_command(settings, folder, job) for job in jobs]
    await asyncio.gather(*[asyncio.to_thread(p.wait, 120) for p in procs])
    ids = [j["job_id"] for j in jobs]
    await marks.ended(ids)
    return {"jobs": count, "all_registered_s": round(max(marks.registered[j] for j in ids) -
            submitted, 3), "to_first_step_s": spread([marks.first_step[j] - submitted
                                                        for j in ids])}  # fmt: skip


async def broker_floor(settings: Settings, rounds: int) -> dict[str, Any]:
    """Raw produce -> fetched round trips of one record on the same broker."""
    from sparktrainer.bus.kafka import ensure_topics

    await ensure_topics(settings, (FLOOR_TOPIC,))
    producer = make_producer(settings)
    await producer.start()
    trips = []
    try:
        async with LogReader(settings, fetch_max_wait_ms=10) as reader:
            await reader.assign_at_end(await reader.partitions((FLOOR_TOPIC,)))
            for n in range(rounds):
                started = time.perf_counter()
                await producer.send(FLOOR_TOPIC, f"{n}".encode())
                while not [
                    r for r in await reader.read(timeout_ms=50) if r.value == f"{n}".encode()
                ]:
                    pass
                trips.append(time.perf_counter() - started)
    finally:
        await producer.stop()
    return spread(trips)


def spread(values: list[float]) -> dict[str, Any]:
    """p50/p99 (nearest rank), the range and the count of a list of seconds."""
    pct = {"p50": percentile(values, 0.5), "p99": percentile(values, 0.99)}
    return {**{k: round(v, 3) for k, v in pct.items()}, "min": round(min(values), 3),
            "max": round(max(values), 3), "n": len(values)}  # fmt: skip


async def run(settings: Settings, jobs: int, count: int) -> dict[str, Any]:
    """Services up; floor, sequential and burst in one run on one broker."""
    group = f"bench-e2e-{uuid.uuid4().hex[:8]}"
    for topic, name in ((JOBS_SUBMITTED, "validator"), (JOBS_VALIDATED, "trainer")):
        tps = await topic_partitions(settings, topic)
        await commit_group(settings, f"{group}-{name}", await log_end_offsets(settings, tps))
    procs = [await start_service(settings, ["-m", f"consumers.{name}", "--group-id",
                                            f"{group}-{name}"], f"READY {name}".encode())
             for name in ("validator", "trainer")]  # fmt: skip
    try:
        with tempfile.TemporaryDirectory(prefix="e2e-") as tmp:
            async with Marks(settings) as marks:
                await sequential(settings, marks, 2, Path(tmp))  # warm-up: first imports, paths
                floor = await broker_floor(settings, jobs)
                seq = await sequential(settings, marks, jobs, Path(tmp))
                many = await burst(settings, marks, count, Path(tmp))
    finally:
        for proc in procs:
            proc.terminate()
            await asyncio.to_thread(proc.wait, 60)
    return {"broker_round_trip_s": floor, "sequential": seq, "burst": many,
            "goal": "10x ahead of Ray Jobs (bench/peer_ray.py)"}  # fmt: skip


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--jobs", type=int, default=50, help="sequential jobs")
    p.add_argument("--burst", type=int, default=10, help="jobs submitted at once")
    p.add_argument("--from-env", action="store_true", help="use SPARKTRAINER_* servers, no stack")
    args = p.parse_args()
    with bench_stack("e2e-bench-", from_env=args.from_env) as settings:
        emit(asyncio.run(run(settings, args.jobs, args.burst)))


if __name__ == "__main__":
    main()
