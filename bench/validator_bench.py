# ruff: noqa: E402 - imports follow the sys.path set-up that lets this run as a script
"""Validator throughput vs a raw aiokafka passthrough, and submit->answer latency at a paced rate.

    python bench/validator_bench.py                      # starts its own embedded stack
    python bench/validator_bench.py --records 5000 --rounds 3 --rate 1000 --seconds 5

Throughput: a backlog of N mixed submissions (half valid jobs, half bad input) sits on
sparktrainer.jobs.submitted; each round a fresh consumer group works through it, once with the
validator's own runtime (``consumers.validator.build_runtime``: decode, validate, answer, wait
for acks, commit) and once with a plain aiokafka loop that copies each record to a topic of the
same partition count (getmany, send, wait for acks, commit). Both run in this process, rounds
alternate, and each is timed from its partition assignment to its N-th acknowledged output.
The figure is the ratio of the medians (goal >= 0.8).

Latency: a validator *process* (``python -m consumers.validator``) answers submissions sent at
a paced rate; each submission's latency runs from just before ``producer.send`` to the moment
its answer (matched by the source coordinates it carries) is fetched back here. p50/p99 over
all of them (goal p99 < 25 ms). The baseline is a raw relay *process* (``--relay``: the same
loop as above) at the same rate; the last hop (answer produced -> fetched here) is reported
apart. Latency runs first, on short answer topics (see ``run``).
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import signal
import statistics
import subprocess
import sys
import time
import uuid
from pathlib import Path
from typing import Any

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))

from aiokafka import ConsumerRebalanceListener, TopicPartition
from benchkit import ROOT, bench_stack, emit, mixed_records, percentile, stack_env

from consumers.validator import build_runtime
from sparktrainer.bus.kafka import ensure_topics, make_consumer, make_producer
from sparktrainer.bus.reader import LogReader, log_end_offsets
from sparktrainer.contracts.topics import (
    JOBS_REJECTED,
    JOBS_SUBMITTED,
    JOBS_VALIDATED,
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
    settings: Settings, store: ObjectStore, start: dict[TopicPartition, int], n: int
) -> tuple[float, float]:
    """records/s of the validator's runtime through the backlog, and CPU us per record."""
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
    raw, validator = [], []
    for _ in range(rounds):
        raw.append(await raw_round(settings, start, records))
        validator.append(await validator_round(settings, store, start, records))
    median = statistics.median
    return {
        "records": records,
        "concurrency": settings.validator_concurrency,
        "raw_records_per_s": [round(v) for v, _ in raw],
        "validator_records_per_s": [round(v) for v, _ in validator],
        "raw_cpu_us_per_record": round(median(c for _, c in raw)),
        "validator_cpu_us_per_record": round(median(c for _, c in validator)),
        "ratio": round(median(v for v, _ in validator) / median(v for v, _ in raw), 3),
        "goal": 0.8,
    }


# -- latency ---------------------------------------------------------------------------


async def start_service(
    settings: Settings, argv: list[str], ready: bytes
) -> subprocess.Popen[bytes]:
    """A child process on this stack; returns once it prints its ``ready`` line on stderr."""
    proc = subprocess.Popen(  # noqa: ASYNC220 - starting is instant; reading is offloaded
        [sys.executable, *argv],
        cwd=str(ROOT),
        env={**os.environ, **stack_env(settings), "SPARKTRAINER_LOG_LEVEL": "WARNING"},
        stderr=subprocess.PIPE,
        stdout=subprocess.DEVNULL,
    )
    assert proc.stderr is not None
    loop = asyncio.get_running_loop()
    while True:
        line = await asyncio.wait_for(loop.run_in_executor(None, proc.stderr.readline), 120)
        if not line:
            raise RuntimeError(f"{argv} exited early with {proc.wait()}")
        if line.startswith(ready):
            loop.run_in_executor(None, proc.stderr.read)  # keep the pipe drained
            return proc


def validator_source(record: Any) -> tuple[int, int] | None:
    """The submission an answer is for (its ``source`` coordinates)."""
    source = json.loads(record.value).get("source")
    if source and source["topic"] == JOBS_SUBMITTED:
        return source["partition"], source["offset"]
    return None


def relay_source(record: Any) -> tuple[int, int] | None:
    """The submission a relayed copy is of (the relay keys copies by coordinates)."""
    partition, offset = record.key.split(b":")
    return int(partition), int(offset)


class AnswerTap:
    """A group-less consumer of the answer topics from their ends, stamping each answer."""

    def __init__(self, settings: Settings, topics: tuple[str, ...], source_of: Any) -> None:
        self.settings, self.topics, self.source_of = settings, topics, source_of
        # Short long-polls: tansu answers a fetch at its max wait, not when data arrives.
        self.reader = LogReader(settings, fetch_max_wait_ms=10)
        self.seen: dict[tuple[int, int], float] = {}
        self.last_hop_ms: list[float] = []  # answer's CreateTime -> fetched here
        self._task: asyncio.Task[None] | None = None

    async def __aenter__(self) -> AnswerTap:
        await self.reader.start()
        await self.reader.assign_at_end(await self.reader.partitions(self.topics))
        self._task = asyncio.create_task(self._run())
        return self

    async def _run(self) -> None:
        while True:
            records = await self.reader.read(timeout_ms=100)
            now, wall_ms = CLOCK(), time.time() * 1000
            for r in records:
                coords = self.source_of(r)
                if coords is not None and coords not in self.seen:
                    self.seen[coords] = now
                    self.last_hop_ms.append(wall_ms - (r.timestamp_ms or 0))

    async def __aexit__(self, *exc: object) -> None:
        if self._task is not None:
            self._task.cancel()
            await asyncio.gather(self._task, return_exceptions=True)
        await self.reader.stop()


async def paced(
    settings: Settings, tap: AnswerTap, rate_per_s: int, seconds: float, seed: int
) -> dict[str, Any]:
    """Send mixed submissions at ``rate_per_s``; latency from send to the answer's arrival."""
    producer = make_producer(settings)
    await producer.start()
    sent: dict[tuple[int, int], float] = {}

    def acked(stamp: float) -> Any:
        return lambda f: sent.__setitem__((f.result().partition, f.result().offset), stamp)

    try:
        warm = mixed_records(200, seed=seed + 1)  # the service's first answers warm its paths
        await asyncio.gather(*[await producer.send(JOBS_SUBMITTED, v) for v in warm])
        await asyncio.sleep(2.0)
        records = mixed_records(int(rate_per_s * seconds), seed=seed)
        futures = []
        t_start = CLOCK()
        for i, value in enumerate(records):
            if (lag := t_start + i / rate_per_s - CLOCK()) > 0:
                await asyncio.sleep(lag)
            future = await producer.send(JOBS_SUBMITTED, value)
            future.add_done_callback(acked(CLOCK()))
            futures.append(future)
        await asyncio.gather(*futures)
        send_s = CLOCK() - t_start
        deadline = CLOCK() + 60
        while any(c not in tap.seen for c in sent) and CLOCK() < deadline:  # noqa: ASYNC110
            await asyncio.sleep(0.05)
    finally:
        await producer.stop()
    lat_ms = [(tap.seen[c] - t) * 1000 for c, t in sent.items() if c in tap.seen]
    last_hop = tap.last_hop_ms[-len(lat_ms) :]  # the warm-up's answers came first
    return {
        "sent": len(sent),
        "achieved_rate_per_s": round(len(sent) / send_s),
        "answered": len(lat_ms),
        "p50_ms": round(percentile(lat_ms, 0.50), 1),
        "p90_ms": round(percentile(lat_ms, 0.90), 1),
        "p99_ms": round(percentile(lat_ms, 0.99), 1),
        "max_ms": round(max(lat_ms), 1),
        # Of which: the answer's own trip from its producer to this tap (the last hop)
        "last_hop_p50_ms": round(percentile(last_hop, 0.50), 1),
        "last_hop_p99_ms": round(percentile(last_hop, 0.99), 1),
    }


async def service_latency(
    settings: Settings, kind: str, rate_per_s: int, seconds: float
) -> dict[str, Any]:
    """Latency through a validator process, or through a raw relay process (the baseline)."""
    await ensure_topics(settings, (PASSTHROUGH,))
    group = f"bench-{kind}-{uuid.uuid4().hex[:8]}"
    submitted = await topic_partitions(settings, JOBS_SUBMITTED)
    await commit_group(settings, group, await log_end_offsets(settings, submitted))
    topics: tuple[str, ...]
    if kind == "validator":
        argv, ready = ["-m", "consumers.validator", "--group-id", group], b"READY validator"
        topics, source_of = (JOBS_VALIDATED, JOBS_REJECTED), validator_source
    else:
        argv, ready = [str(HERE / "validator_bench.py"), "--relay", group], b"READY relay"
        topics, source_of = (PASSTHROUGH,), relay_source
    proc = await start_service(settings, argv, ready)
    try:
        async with AnswerTap(settings, topics, source_of) as tap:
            return await paced(settings, tap, rate_per_s, seconds, seed=11)
    finally:
        proc.terminate()
        await asyncio.to_thread(proc.wait, 30)


async def latency(settings: Settings, rate_per_s: int, seconds: float) -> dict[str, Any]:
    """Validator and raw relay latency at the same paced rate, one after the other."""
    raw = await service_latency(settings, "relay", rate_per_s, seconds)
    validator = await service_latency(settings, "validator", rate_per_s, seconds)
    return {"rate_per_s": rate_per_s, "seconds": seconds, "raw_relay": raw,
            "validator": validator, "goal_p99_ms": 25}  # fmt: skip


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
    """Both measurements on one stack: latency first, while the answer topics are short.

    On tansu's S3 storage a fetch slows down as a topic piles up small batches: after the
    throughput rounds (tens of thousands of answers) the tap's last hop alone took seconds.
    """
    out: dict[str, Any] = {"latency": await latency(settings, args.rate, args.seconds)}
    out["throughput"] = await throughput(settings, args.records, args.rounds)
    return out


def parser() -> argparse.ArgumentParser:
    """The command line (run_all reuses the defaults)."""
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--records", type=int, default=5000, help="backlog size per round")
    p.add_argument("--rounds", type=int, default=3)
    p.add_argument("--rate", type=int, default=1000, help="submissions/s for the latency run")
    p.add_argument("--seconds", type=float, default=5.0)
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
