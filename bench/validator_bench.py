# ruff: noqa: E402 - imports follow the sys.path set-up that lets this run as a script
"""Validator throughput vs a raw aiokafka passthrough relay, rounds alternating.

    python bench/validator_bench.py                      # starts its own embedded stack
    python bench/validator_bench.py --records 5000 --rounds 3

Throughput: a backlog of N mixed submissions (half valid jobs, half bad input) sits on
sparktrainer.jobs.submitted; each round a fresh consumer group works through it, once with the
validator's own runtime (``consumers.validator.build_runtime``: decode, validate, answer, wait
for acks, commit) and once with a plain aiokafka loop that copies each record to a topic of the
same partition count (getmany, send, wait for acks, commit). Both run in this process, rounds
alternate, and each is timed from its partition assignment to its N-th acknowledged output;
each side's CPU time per record is shown beside its rate. The figure is the ratio of the
medians (goal >= 0.5, issue 21). A third side is the validator without S3 (so without its id
claims: one S3 read per record with a job id, and a write per new valid job), to show what
the claims cost against the rest of its work.

Latency rounds are in ``validator_latency.py`` (their relay process is ``--relay`` here).
"""

from __future__ import annotations

import argparse
import asyncio
import signal
import statistics
import sys
import time
import uuid
from pathlib import Path
from typing import Any

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))

from aiokafka import ConsumerRebalanceListener, TopicPartition
from benchkit import bench_stack, emit, mixed_records

from consumers.validator import build_runtime
from sparktrainer.bus.kafka import ensure_topics, make_consumer, make_producer
from sparktrainer.bus.reader import LogReader, log_end_offsets
from sparktrainer.contracts.topics import (
    JOBS_SUBMITTED,
)
from sparktrainer.settings import Settings
from sparktrainer.storage.s3 import ObjectStore

PASSTHROUGH = "bench.passthrough"
CLOCK = time.perf_counter


class _Assigned(ConsumerRebalanceListener):  # type: ignore[misc]
    def __init__(self) -> None:
        self.event = asyncio.Event()

    async def on_partitions_revoked(self, revoked: Any) -> None:
        pass

    async def on_partitions_assigned(self, assigned: Any) -> None:
        self.event.set()


async def topic_partitions(settings: Settings, topic: str) -> list[TopicPartition]:
    """Every partition of ``topic`` (fresh metadata)."""
    async with LogReader(settings) as reader:
        return await reader.partitions((topic,))


async def commit_group(
    settings: Settings, group_id: str, offsets: dict[TopicPartition, int]
) -> None:
    """Set ``group_id``'s committed offsets (a fresh group then starts exactly there)."""
    committer = make_consumer(settings, group_id=group_id)
    await committer.start()
    try:
        committer.assign(list(offsets))
        await committer.commit(offsets)
    finally:
        await committer.stop()


async def produce_backlog(settings: Settings, records: list[bytes]) -> dict[TopicPartition, int]:
    """Put ``records`` on jobs.submitted (no key, as a UI would); returns the start offsets."""
    start = await log_end_offsets(settings, await topic_partitions(settings, JOBS_SUBMITTED))
    producer = make_producer(settings)
    await producer.start()
    try:
        for i in range(0, len(records), 1000):
            futures = [await producer.send(JOBS_SUBMITTED, v) for v in records[i : i + 1000]]
            await asyncio.gather(*futures)
    finally:
        await producer.stop()
    return start


async def _until(done: Any, timeout_s: float) -> float:
    deadline = CLOCK() + timeout_s
    while not done():
        if CLOCK() > deadline:
            raise TimeoutError("benchmark round did not finish in time")
        await asyncio.sleep(0.002)
    return CLOCK()


async def validator_round(
    settings: Settings, store: ObjectStore | None, start: dict[TopicPartition, int], n: int
) -> tuple[float, float]:
    """records/s of the validator's runtime through the backlog, and CPU us per record.

    ``store`` None: without S3, so without the id claims (what the rest of the work costs).
    """
    group = f"bench-validator-{uuid.uuid4().hex[:8]}"
    await commit_group(settings, group, start)
    runtime = build_runtime(settings, store, group_id=group)
    task = asyncio.create_task(runtime.run())
    try:
        await asyncio.wait_for(runtime.assigned.wait(), 60)
        t0, cpu0 = CLOCK(), time.process_time()
        t1 = await _until(lambda: runtime.stats.records_done >= n, 300)
        cpu = time.process_time() - cpu0
    finally:
        runtime.stop()
        await task
    assert runtime.stats.records_out == n and runtime.stats.handler_errors == 0, runtime.stats
    return n / (t1 - t0), cpu / n * 1e6


async def relay(
    settings: Settings,
    group: str,
    *,
    until: Any,
    on_assigned: Any = None,
    stamp_source: bool = False,
) -> float:
    """The raw baseline: getmany -> send each record on -> wait for the acks -> commit.

    Runs until ``until(done)`` is true (``done``: records passed on); returns when it stopped.
    ``stamp_source`` keys each copy by its source coordinates (for the latency tap).
    """
    consumer = make_consumer(settings, group_id=group)
    producer = make_producer(settings)
    listener = _Assigned()
    consumer.subscribe([JOBS_SUBMITTED], listener=listener)
    await producer.start()
    await consumer.start()
    done, announced = 0, False
    try:
        while not until(done):
            batch = await consumer.getmany(timeout_ms=100, max_records=500)
            if not announced and listener.event.is_set() and on_assigned is not None:
                on_assigned()  # the first poll after the join (the join itself is not timed)
                announced = True
            for tp, records in batch.items():
                futures = [
                    await producer.send(
                        PASSTHROUGH,
                        r.value,
                        key=f"{r.partition}:{r.offset}".encode() if stamp_source else r.key,
                        headers=list(r.headers),
                    )
                    for r in records
                ]
                await asyncio.gather(*futures)
                await consumer.commit({tp: records[-1].offset + 1})
                done += len(records)
        return CLOCK()
    finally:
        await consumer.stop()
        await producer.stop()


async def raw_round(
    settings: Settings, start: dict[TopicPartition, int], n: int
) -> tuple[float, float]:
    """records/s of the raw relay through the same backlog, and CPU us per record."""
    group = f"bench-raw-{uuid.uuid4().hex[:8]}"
    await commit_group(settings, group, start)
    marks: list[tuple[float, float]] = []
    end = await relay(
        settings,
        group,
        until=lambda done: done >= n,
        on_assigned=lambda: marks.append((CLOCK(), time.process_time())),
    )
    cpu = time.process_time() - marks[0][1]  # up to its consumer's stop: a slight overcount
    return n / (end - marks[0][0]), cpu / n * 1e6


async def throughput(settings: Settings, records: int, rounds: int) -> dict[str, Any]:
    """Alternating rounds of raw passthrough and validator over one backlog."""
    await ensure_topics(settings, (PASSTHROUGH,))
    store = ObjectStore.from_settings(settings)
    start = await produce_backlog(settings, mixed_records(records))
    await raw_round(settings, start, records)  # warm-up: broker caches, imports, pydantic
    await validator_round(settings, store, start, records)
    raw, validator, unclaimed = [], [], []
    for _ in range(rounds):
        raw.append(await raw_round(settings, start, records))
        validator.append(await validator_round(settings, store, start, records))
        unclaimed.append(await validator_round(settings, None, start, records))
    median = statistics.median
    raw_rate = median(v for v, _ in raw)
    return {
        "records": records,
        "concurrency": settings.validator_concurrency,
        "batch_records": settings.validator_batch_records,
        "raw_records_per_s": [round(v) for v, _ in raw],
        "validator_records_per_s": [round(v) for v, _ in validator],
        "unclaimed_records_per_s": [round(v) for v, _ in unclaimed],
        "raw_cpu_us_per_record": round(median(c for _, c in raw)),
        "validator_cpu_us_per_record": round(median(c for _, c in validator)),
        "unclaimed_cpu_us_per_record": round(median(c for _, c in unclaimed)),
        "ratio": round(median(v for v, _ in validator) / raw_rate, 3),
        "unclaimed_ratio": round(median(v for v, _ in unclaimed) / raw_rate, 3),
        "goal": 0.5,
    }


# -- latency ---------------------------------------------------------------------------


def relay_main(group: str) -> None:
    """``--relay GROUP``: the raw relay as a process, until SIGTERM (for the latency baseline)."""
    settings = Settings()
    stop = asyncio.Event()

    def ready() -> None:
        print("READY relay", file=sys.stderr, flush=True)

    async def main() -> None:
        loop = asyncio.get_running_loop()
        loop.add_signal_handler(signal.SIGTERM, stop.set)
        await relay(settings, group, until=lambda _: stop.is_set(), on_assigned=ready,
                    stamp_source=True)  # fmt: skip

    asyncio.run(main())


async def run(settings: Settings, args: argparse.Namespace) -> dict[str, Any]:
    """The throughput rounds (the latency rounds are ``validator_latency.py``, run first)."""
    return {"throughput": await throughput(settings, args.records, args.rounds)}


def parser() -> argparse.ArgumentParser:
    """The command line (run_all reuses the defaults)."""
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--records", type=int, default=5000, help="backlog size per round")
    p.add_argument("--rounds", type=int, default=3)
    p.add_argument("--from-env", action="store_true", help="use SPARKTRAINER_* servers, no stack")
    p.add_argument("--relay", metavar="GROUP", help=argparse.SUPPRESS)  # the baseline process
    return p


def main() -> None:
    args = parser().parse_args()
    if args.relay:
        relay_main(args.relay)
        return
    with bench_stack("validator-bench-", from_env=args.from_env) as settings:
        emit(asyncio.run(run(settings, args)))


if __name__ == "__main__":
    main()
