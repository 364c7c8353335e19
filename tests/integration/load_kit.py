"""Load drivers: a deployable consumer and its load in one process, Kafka in memory.

    python -m tests.integration.load_kit validator ROUNDS BURST
    python -m tests.integration.load_kit trainer JOBS

The consumer runs as deployed (``consumers.validator.main`` / ``consumers.trainer.main``:
``serve()``, settings from the environment, SIGTERM a graceful stop) on the in-memory broker
the environment names (``SPARKTRAINER_KAFKA_BOOTSTRAP_SERVERS=memory://...``). A driver thread
with an event loop of its own puts the load on the same broker, waits for the consumer's work,
deletes the records it is done with (DeleteRecords: the log's memory is not the consumer's),
and prints one JSON line per round (counts, RSS); then it stops the process with SIGTERM.
``test_load.py`` starts this and asserts on the lines and the exit code.
"""

from __future__ import annotations

import asyncio
import gc
import json
import os
import random
import signal
import sys
import threading
import time
import traceback
import uuid
from collections import Counter
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any

from aiokafka.admin import RecordsToDelete

from sparktrainer.bus.kafka import make_admin, make_consumer, make_producer, send
from sparktrainer.bus.reader import LogReader
from sparktrainer.contracts.envelope import decode, encode
from sparktrainer.contracts.events import JobCompleted, JobFailed, JobValidated
from sparktrainer.contracts.topics import (
    ALL_TOPICS,
    JOBS_LIFECYCLE,
    JOBS_REJECTED,
    JOBS_SUBMITTED,
    VALIDATED_TOPICS,
)
from sparktrainer.settings import Settings
from sparktrainer.validation.checks import validate_job
from tests import guide

GROUP = "load"
ROUND_TIMEOUT_S = 180.0


# -- processes and memory ----------------------------------------------------------------


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


def report(**fields: Any) -> None:
    print(json.dumps(fields), flush=True)


# -- the log -------------------------------------------------------------------------------


async def until(check: Callable[[], Awaitable[Any]], what: str) -> Any:
    """Poll ``check`` until it answers something true, and return that; fail after a while."""
    deadline = time.monotonic() + ROUND_TIMEOUT_S
    while not (answer := await check()):
        assert time.monotonic() < deadline, f"not within {ROUND_TIMEOUT_S}s: {what}"
        await asyncio.sleep(0.05)
    return answer


async def committed_to_end(settings: Settings, group: str, topic: str) -> bool:
    """Whether the group has committed every record of the topic (its lag is zero)."""
    async with LogReader(settings) as reader:
        ends = await reader.ends(await reader.partitions((topic,)))
    probe = make_consumer(settings, group_id=group)
    await probe.start()
    try:
        committed = {tp: await probe.committed(tp) or 0 for tp in ends}
    finally:
        await probe.stop()
    return all(committed[tp] >= end for tp, end in ends.items())


async def read_all(settings: Settings, topics: tuple[str, ...]) -> list[Any]:
    """Every record the topics hold now, from their log starts."""
    async with LogReader(settings) as reader:
        tps = await reader.partitions(topics)
        ends = await reader.ends(tps)
        await reader.assign_at_beginning(tps)
        return [r async for batch in reader.read_range(ends) for r in batch]


async def delete_everything(settings: Settings) -> None:
    """Drop every record the broker holds now (the consumers' positions are past them)."""
    async with LogReader(settings) as reader:
        ends = await reader.ends(await reader.partitions(ALL_TOPICS))
    await make_admin(settings).delete_records({tp: RecordsToDelete(e) for tp, e in ends.items()})
    gc.collect()


# -- the validator -------------------------------------------------------------------------


def mixed_records(n: int, seed: int) -> list[bytes]:
    """Half the guide's first job, half bad input of every kind the door must answer."""
    rng = random.Random(seed)
    good = json.dumps(guide.by_name("Initial Model Training")).encode()
    bad = [
        *(b"", b"nope", b"[]", b"{}", b'{"type":"train"}', b"\xff" * 10, b'{"a":' * 50),
        b'{"type": "train", "framework": "pytorch", "config": {"epochs": -1}}',
    ]
    return [good if rng.random() < 0.5 else rng.choice(bad) for _ in range(n)]


async def drive_validator(settings: Settings, rounds: int, size: int) -> None:
    """Bursts of ``size`` mixed submissions; per round, how each was answered and the RSS."""
    producer = make_producer(settings)
    await producer.start()
    try:
        for seed in range(1, rounds + 1):
            futures = [await producer.send(JOBS_SUBMITTED, v) for v in mixed_records(size, seed)]
            coords = {(m.partition, m.offset) for m in await asyncio.gather(*futures)}
            # Committed to the end: every record done, so every answer is on the log.
            await until(
                lambda: committed_to_end(settings, GROUP, JOBS_SUBMITTED), "the lag back to 0"
            )
            answers = Counter(
                (source["partition"], source["offset"])
                for r in await read_all(settings, (*VALIDATED_TOPICS, JOBS_REJECTED))
                if (source := json.loads(r.value).get("source") or {}).get("topic")
                == JOBS_SUBMITTED
            )
            await delete_everything(settings)
            report(
                round=seed,
                sent=len(coords),
                answered_once=sum(answers[c] == 1 for c in coords),
                answers=sum(answers.values()),
                rss=rss_bytes(os.getpid()),
            )
    finally:
        await producer.stop()


# -- the trainer ---------------------------------------------------------------------------


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


async def ends_of(settings: Settings, job_id: str) -> list[JobCompleted | JobFailed]:
    """The job's end events on the lifecycle topic now."""
    events = [decode(r.value, r.headers) for r in await read_all(settings, (JOBS_LIFECYCLE,))]
    return [e for e in events if isinstance(e, JobCompleted | JobFailed) and e.job_id == job_id]


async def drive_trainer(settings: Settings, jobs: int) -> None:
    """Jobs one after another; per job, how it ended, the RSS of the trainer and its worker."""
    producer = make_producer(settings)
    await producer.start()
    try:
        for n in range(jobs):
            job = tiny_job(n)
            await send(producer, encode(job, "test"))
            ends = await until(lambda j=job.job_id: ends_of(settings, j), f"job {n} ends")
            worker = warm_worker_of(os.getpid())
            await delete_everything(settings)
            report(
                job=n,
                outcome=type(ends[0]).__name__,
                ends=len(ends),
                rss=rss_bytes(os.getpid()),
                worker=worker,
                worker_rss=rss_bytes(worker),
            )
    finally:
        await producer.stop()


# -- the process -------------------------------------------------------------------------------


def drive(settings: Settings, driver: Callable[[], Awaitable[None]]) -> None:
    """Run the driver in this thread's own loop; report a failure; SIGTERM the process."""
    try:
        asyncio.run(driver())
    except BaseException:
        report(error=traceback.format_exc()[-2000:])
    finally:
        os.kill(os.getpid(), signal.SIGTERM)


def main(argv: list[str]) -> int:
    kind, *numbers = argv
    settings = Settings()
    assert settings.kafka_ready().startswith("memory://"), "the load runs on the in-memory broker"
    if kind == "validator":
        from consumers.validator import main as consumer

        driver: Callable[[], Awaitable[None]] = lambda: drive_validator(  # noqa: E731
            settings, int(numbers[0]), int(numbers[1])
        )
    else:
        from consumers.trainer import main as consumer

        driver = lambda: drive_trainer(settings, int(numbers[0]))  # noqa: E731
    thread = threading.Thread(target=drive, args=(settings, driver), name="load-driver")
    thread.start()
    code = consumer(["--group-id", GROUP])
    thread.join(30)
    return code


if __name__ == "__main__":
    raise SystemExit(main(sys.argv[1:]))
