"""Load and memory: real consumer processes under bursts and long job sequences.

A validator process answers 10,000 mixed submissions, then two more bursts: every record is
answered exactly once, its group's lag returns to zero, and its resident memory stops growing.
A trainer process runs 50 tiny jobs one after another: all complete on one warm worker, and
the memory of the trainer and of its worker levels off.

Counts and memory only: no timing assertions (the CI machine is small and shared).
"""

from __future__ import annotations

import asyncio
import json
import os
import random
import signal
import subprocess
import uuid
from pathlib import Path
from statistics import mean

import pytest
from aiokafka import AIOKafkaProducer

from sparktrainer.bus.kafka import make_consumer, send
from sparktrainer.bus.reader import LogReader
from sparktrainer.contracts.envelope import encode
from sparktrainer.contracts.events import JobCompleted, JobFailed, JobValidated
from sparktrainer.contracts.topics import (
    JOBS_CONTROL,
    JOBS_LIFECYCLE,
    JOBS_REJECTED,
    JOBS_SUBMITTED,
    JOBS_VALIDATED,
    VALIDATED_TOPICS,
)
from sparktrainer.settings import Settings
from sparktrainer.validation.checks import validate_job
from tests import guide
from tests.integration.procs import start_consumer
from tests.integration.tap import Tap, producer_for, start_group_at_end

pytestmark = [pytest.mark.integration, pytest.mark.slow]

BURST = 10_000
MB = 2**20
# RSS after the third burst may exceed that after the second by this much: a leak of even
# 1.5 KB per record (a kept record, event or task) would add 15 MB per 10,000.
VALIDATOR_RSS_SLACK_BYTES = 15 * MB
JOBS, WARM_UP = 50, 10
# Mean RSS over jobs 40-50 vs 30-40 (flat within ~1 MB when healthy): a leak of ~1 MB a job
# (a dataset, a model with its optimizer) adds ~10 MB between the two windows.
TRAINER_RSS_SLACK_BYTES, TRAINER_RSS_SLACK_SHARE = 4 * MB, 0.005


# -- processes and memory ----------------------------------------------------------------


async def stop_process(proc: subprocess.Popen[bytes]) -> None:
    """SIGTERM (a graceful stop); SIGKILL for the whole group if it does not end in time."""
    if proc.poll() is None:
        proc.terminate()
        try:
            await asyncio.to_thread(proc.wait, 30)
        except subprocess.TimeoutExpired:
            os.killpg(proc.pid, signal.SIGKILL)
            await asyncio.to_thread(proc.wait, 10)


def rss_bytes(pid: int) -> int:
    """Resident set size of a process, from /proc/PID/status."""
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) * 1024
    raise AssertionError(f"no VmRSS for process {pid}")


def children(pid: int) -> list[int]:
    """Direct children of a process (the ppid field of /proc/*/stat)."""
    found = []
    for stat in Path("/proc").glob("[0-9]*/stat"):
        try:
            text = stat.read_text()
        except OSError:  # gone meanwhile
            continue
        # The command name may hold spaces: fields after its closing parenthesis.
        if int(text.rsplit(")", 1)[1].split()[1]) == pid:
            found.append(int(stat.parent.name))
    return found


def warm_worker_of(pid: int) -> int:
    """The trainer's warm worker: its multiprocessing-spawned child (not the resource tracker)."""
    workers = [
        c
        for c in children(pid)
        if b"spawn_main" in Path(f"/proc/{c}/cmdline").read_bytes().replace(b"\0", b" ")
    ]
    assert len(workers) == 1, f"expected one warm worker under {pid}, found {workers}"
    return workers[0]


# -- the validator under bursts ----------------------------------------------------------


def mixed_records(n: int, seed: int) -> list[bytes]:
    """Half the guide's first job, half bad input of every kind the door must answer."""
    rng = random.Random(seed)
    good = json.dumps(guide.by_name("Initial Model Training")).encode()
    bad = [
        *(b"", b"nope", b"[]", b"{}", b'{"type":"train"}', b"\xff" * 10, b'{"a":' * 50),
        b'{"type": "train", "framework": "pytorch", "config": {"epochs": -1}}',
    ]
    return [good if rng.random() < 0.5 else rng.choice(bad) for _ in range(n)]


class AnswerCounter(Tap):
    """Counts answers per submission (by the source coordinates they carry), nothing kept."""

    def __init__(self, settings: Settings) -> None:
        super().__init__(settings, JOBS_VALIDATED, JOBS_REJECTED)
        self.answers: dict[tuple[int, int], int] = {}

    async def _run(self) -> None:
        while True:
            for r in await self._reader.read(timeout_ms=100):
                source = json.loads(r.value).get("source") or {}
                if source.get("topic") == JOBS_SUBMITTED:
                    coords = (source["partition"], source["offset"])
                    self.answers[coords] = self.answers.get(coords, 0) + 1

    async def until_answered(self, coords: set[tuple[int, int]], timeout_s: float) -> None:
        """Wait until every submission in ``coords`` has an answer."""
        for _ in range(int(timeout_s / 0.1)):
            if all(c in self.answers for c in coords):
                return
            await asyncio.sleep(0.1)
        missing = sum(c not in self.answers for c in coords)
        raise AssertionError(
            f"{missing} of {len(coords)} submissions unanswered after {timeout_s}s"
        )


async def burst(producer: AIOKafkaProducer, records: list[bytes]) -> set[tuple[int, int]]:
    """Send every record without waiting in between; returns their coordinates."""
    futures = [await producer.send(JOBS_SUBMITTED, value) for value in records]
    return {(m.partition, m.offset) for m in await asyncio.gather(*futures)}


async def lag(settings: Settings, group_id: str) -> int:
    """How many records of jobs.submitted the group has not committed yet."""
    async with LogReader(settings) as reader:
        tps = await reader.partitions((JOBS_SUBMITTED,))
        ends = await reader.ends(tps)
    probe = make_consumer(settings, group_id=group_id)
    await probe.start()
    try:
        committed = {tp: await probe.committed(tp) or 0 for tp in tps}
        return sum(end - committed[tp] for tp, end in ends.items())
    finally:
        await probe.stop()


async def until_no_lag(settings: Settings, group_id: str, timeout_s: float = 30.0) -> None:
    """Wait until the group has committed everything on jobs.submitted."""
    left = -1
    for _ in range(int(timeout_s / 0.5)):
        left = await lag(settings, group_id)
        if left == 0:
            return
        await asyncio.sleep(0.5)
    raise AssertionError(f"consumer lag still {left} after {timeout_s}s")


async def test_validator_process_answers_bursts_and_its_memory_levels_off(settings, unique) -> None:
    group = unique("load-validator")
    await start_group_at_end(settings, group, JOBS_SUBMITTED)
    proc = await start_consumer("consumers.validator", group)
    producer = producer_for(settings)
    await producer.start()
    rss: list[int] = []
    try:
        async with AnswerCounter(settings) as counter:
            for seed in (1, 2, 3):  # a warm-up burst, then two to compare
                records = mixed_records(BURST, seed)
                coords = await burst(producer, records)
                assert len(coords) == BURST
                await counter.until_answered(coords, timeout_s=120)
                await until_no_lag(settings, group)
                await asyncio.sleep(1.0)  # a duplicate answer would show up by now
                assert all(counter.answers[c] == 1 for c in coords), "answered exactly once"
                rss.append(rss_bytes(proc.pid))
            assert proc.poll() is None, "the validator survived every burst"
    finally:
        await producer.stop()
        await stop_process(proc)
    assert proc.returncode == 0  # SIGTERM is a graceful stop
    grown = rss[2] - rss[1]
    assert grown <= VALIDATOR_RSS_SLACK_BYTES, (
        f"validator RSS after each burst: {[round(r / MB, 1) for r in rss]} MB; "
        f"grew {grown / MB:.1f} MB in the third burst"
    )


# -- the trainer over many jobs ----------------------------------------------------------


def tiny_job(n: int) -> JobValidated:
    """A tiny MLP on the bundled digits, one epoch."""
    job = {
        "type": "train",
        "framework": "pytorch",
        "name": f"load {n}",
        "config": {
            "architecture": "custom",
            "input_size": 64,
            "output_size": 10,
            "hidden_layers": [32],
            "epochs": 1,
            "batch_size": 64,
            "data": {"source": "digits"},
        },
    }
    result = validate_job(job, None)
    assert result.valid and result.config is not None, result.errors
    return JobValidated(
        job_id=f"load-{n:02d}-{uuid.uuid4().hex[:8]}",
        name=job["name"],
        type="train",
        framework="pytorch",
        config_kind=result.config.kind,
        config=result.config,
    )


def levels_off(label: str, series: list[int]) -> None:
    """Mean over jobs 40-50 within the slack of the mean over jobs 30-40."""
    before, after = mean(series[30:40]), mean(series[40:50])
    slack = TRAINER_RSS_SLACK_BYTES + TRAINER_RSS_SLACK_SHARE * before
    assert after - before <= slack, (
        f"{label} RSS still growing: mean {before / MB:.1f} MB over jobs 30-40, "
        f"{after / MB:.1f} MB over jobs 40-50; per job: {[round(r / MB) for r in series]}"
    )


async def test_trainer_process_runs_50_jobs_and_its_memory_levels_off(settings, unique) -> None:
    group = unique("load-trainer")
    await start_group_at_end(settings, group, *VALIDATED_TOPICS)
    await start_group_at_end(settings, f"{group}-control", JOBS_CONTROL)
    proc = await start_consumer("consumers.trainer", group)
    producer = producer_for(settings)
    await producer.start()
    trainer_rss: list[int] = []
    worker_rss: list[int] = []
    workers: set[int] = set()
    try:
        async with Tap(settings, JOBS_LIFECYCLE) as tap:
            for n in range(JOBS):
                job = tiny_job(n)
                await send(producer, encode(job, "test"))
                [end] = await tap.wait_for(
                    lambda e, job_id=job.job_id: (
                        isinstance(e, JobCompleted | JobFailed) and e.job_id == job_id
                    ),
                    1,
                    timeout_s=120,
                )
                assert isinstance(end, JobCompleted), end
                worker = warm_worker_of(proc.pid)
                trainer_rss.append(rss_bytes(proc.pid))
                worker_rss.append(rss_bytes(worker))
                if n >= WARM_UP:
                    workers.add(worker)
                tap.events.clear()  # keep the tap's memory flat too
                tap.records.clear()
    finally:
        await producer.stop()
        await stop_process(proc)
    assert len(worker_rss) == JOBS
    assert len(workers) == 1, f"one warm worker ran every job after warm-up, saw {workers}"
    levels_off("trainer", trainer_rss)
    levels_off("warm worker", worker_rss)
