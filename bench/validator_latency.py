# ruff: noqa: E402 - imports follow the sys.path set-up that lets this run as a script
"""Submit -> answer latency at a paced rate: a validator process vs a raw relay process.

    python bench/validator_latency.py                    # starts its own embedded stack
    python bench/validator_latency.py --rate 1000 --seconds 5 --rounds 2

A validator *process* (``python -m consumers.validator``) answers submissions sent at a paced
rate; each submission's latency runs from just before ``producer.send`` to the moment its
answer (matched by the source coordinates it carries) is fetched back here. The baseline is a
raw relay *process* (``validator_bench.py --relay``: getmany, send, wait for acks, commit) fed
the same records at the same rate: both do one consume, one produce and one commit per
record, the validator also validates and answers with a CloudEvent. Rounds alternate (relay,
validator, validator, relay, ...) so machine noise hits both; p50/p99 are over every
submission of a side's rounds (goal p99 < 25 ms). The answer's last hop (produced -> fetched
here) is reported apart. Run before the throughput rounds, on short answer topics.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import subprocess
import sys
import time
import uuid
from pathlib import Path
from typing import Any

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))

from benchkit import ROOT, bench_stack, emit, mixed_records, percentile, stack_env
from validator_bench import PASSTHROUGH, commit_group, topic_partitions

from sparktrainer.bus.kafka import ensure_topics, make_producer
from sparktrainer.bus.reader import LogReader, log_end_offsets
from sparktrainer.contracts.topics import JOBS_REJECTED, JOBS_SUBMITTED, JOBS_VALIDATED
from sparktrainer.settings import Settings

CLOCK = time.perf_counter


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
        **percentiles(lat_ms, last_hop),
        "latencies_ms": lat_ms,
        "last_hops_ms": last_hop,
    }


def percentiles(lat_ms: list[float], last_hop_ms: list[float]) -> dict[str, Any]:
    """p50/p90/p99/max of the latencies, and p50/p99 of their last hop (the answer's own trip
    from its producer to this tap)."""
    return {
        "answered": len(lat_ms),
        **{f"p{q}_ms": round(percentile(lat_ms, q / 100), 1) for q in (50, 90, 99)},
        "max_ms": round(max(lat_ms), 1),
        **{f"last_hop_p{q}_ms": round(percentile(last_hop_ms, q / 100), 1) for q in (50, 99)},
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


async def latency(
    settings: Settings, rate_per_s: int, seconds: float, rounds: int
) -> dict[str, Any]:
    """Validator and raw relay latency at the same paced rate, rounds alternating."""
    sides: dict[str, list[dict[str, Any]]] = {"relay": [], "validator": []}
    for n in range(rounds):
        order = ("relay", "validator") if n % 2 == 0 else ("validator", "relay")
        for kind in order:
            sides[kind].append(await service_latency(settings, kind, rate_per_s, seconds))
    return {"rate_per_s": rate_per_s, "seconds": seconds, "rounds": rounds,
            "raw_relay": pooled(sides["relay"]), "validator": pooled(sides["validator"]),
            "goal_p99_ms": 25}  # fmt: skip


def pooled(rounds: list[dict[str, Any]]) -> dict[str, Any]:
    """One side's rounds as one set of submissions: percentiles over all of them."""
    lat = [v for r in rounds for v in r.pop("latencies_ms")]
    hop = [v for r in rounds for v in r.pop("last_hops_ms")]
    return {"sent": sum(r["sent"] for r in rounds), **percentiles(lat, hop), "per_round": rounds}


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--rate", type=int, default=1000, help="submissions/s")
    p.add_argument("--seconds", type=float, default=5.0, help="length of one round")
    p.add_argument("--rounds", type=int, default=2, help="rounds per side, alternating")
    p.add_argument("--from-env", action="store_true", help="use SPARKTRAINER_* servers, no stack")
    args = p.parse_args()
    with bench_stack("validator-latency-", from_env=args.from_env) as settings:
        emit({"latency": asyncio.run(latency(settings, args.rate, args.seconds, args.rounds))})


if __name__ == "__main__":
    main()
