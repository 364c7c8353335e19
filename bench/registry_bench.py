"""Registry benchmark: GET /api/models latency with 10,000 models, and the projector's rebuild rate.

    python bench/registry_bench.py [--models 10000] [--requests 2000]

Starts its own in-memory tansu broker unless SPARKTRAINER_KAFKA_BOOTSTRAP_SERVERS is set (then
it writes to that broker's topics: use a scratch broker). It publishes N ModelRegistered events,
then in the same process, rounds alternating, times (a) a raw aiokafka read of
sparktrainer.models.registered and (b) the projector rebuilding a fresh read model from the same
topic (decode + fold + SQLite commit per batch), on the wall clock and the CPU clock (goal: the
rebuild at >= 0.3 of the raw read, issue 21), and (c) GET /api/models through the real FastAPI
app (in-process ASGI, no network) on that read model. Results go to stdout and
bench/results/registry_bench.json.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import random
import statistics
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

import httpx  # noqa: E402
from benchkit import free_port, start_tansu  # noqa: E402

from sparktrainer.api.app import create_app  # noqa: E402
from sparktrainer.bus.kafka import ensure_topics, make_consumer, make_producer  # noqa: E402
from sparktrainer.bus.reader import LogReader  # noqa: E402
from sparktrainer.contracts.envelope import encode  # noqa: E402
from sparktrainer.contracts.events import Artifact, ModelRegistered  # noqa: E402
from sparktrainer.contracts.topics import MODELS_REGISTERED  # noqa: E402
from sparktrainer.guide import by_name  # noqa: E402
from sparktrainer.registry.runner import Projector  # noqa: E402
from sparktrainer.settings import Settings  # noqa: E402

# The architecture of the guide's "Initial Model Training", as a registration records it.
GUIDE_ARCHITECTURE = {
    k: v
    for k, v in by_name("Initial Model Training")["config"].items()
    if k in ("architecture", "input_size", "output_size", "hidden_layers")
}


def registration(i: int, rng: random.Random) -> ModelRegistered:
    model_id = f"bench-{i:06d}"
    base = f"bench-{rng.randrange(i):06d}" if i and rng.random() < 0.3 else None
    return ModelRegistered(
        model_id=model_id,
        job_id=model_id,
        name=f"bench model {i}",
        framework="pytorch" if i % 4 else "huggingface",
        architecture=GUIDE_ARCHITECTURE,
        artifacts=[
            Artifact(path=p, size_bytes=rng.randrange(1, 10**8), sha256=f"{i:064x}")
            for p in ("model.pth", "best_model.pth", "config.json", "env.json", "metadata.json")
        ],
        storage_prefix=f"models/{model_id}/",
        base_model_id=base,
        lineage=[base] if base else [],
        metrics={"accuracy": rng.random(), "loss": rng.random()},
        tags=[f"team-{i % 10}", "bench"],
        license="apache-2.0",
        domain="vision",
    )


async def publish(settings: Settings, n: int) -> float:
    rng = random.Random(0)
    producer = make_producer(settings)
    await producer.start()
    t0 = time.perf_counter()
    pending = []
    for i in range(n):
        rec = encode(registration(i, rng), "bench")
        pending.append(await producer.send(rec.topic, rec.value, key=rec.key, headers=rec.headers))
        if len(pending) >= 1000:
            await asyncio.gather(*pending)
            pending.clear()
    await asyncio.gather(*pending)
    await producer.stop()
    return time.perf_counter() - t0


async def raw_read(settings: Settings) -> tuple[int, float, float]:
    """A plain group-less aiokafka read of the whole topic (no decoding): records, wall s, CPU s."""
    async with LogReader(settings) as reader:
        tps = await reader.partitions((MODELS_REGISTERED,))
        ends = await reader.ends(tps)
    consumer = make_consumer(settings, group_id=None, max_poll_records=1000, fetch_max_wait_ms=100)
    await consumer.start()
    consumer.assign(tps)
    for tp in tps:
        consumer.seek(tp, 0)
    t0, cpu0, count = time.perf_counter(), time.process_time(), 0
    while any([await consumer.position(tp) < end for tp, end in ends.items()]):
        batches = await consumer.getmany(timeout_ms=200, max_records=1000)
        count += sum(len(v) for v in batches.values())
    elapsed, cpu = time.perf_counter() - t0, time.process_time() - cpu0
    await consumer.stop()
    return count, elapsed, cpu


async def rebuild(settings: Settings, db: Path) -> tuple[int, float, float]:
    """The projector folding the topic into a fresh read model: applied, wall s, CPU s."""
    projector = Projector(settings, db)
    await projector.start(rebuild=True)
    t0, cpu0 = time.perf_counter(), time.process_time()
    applied = await projector.catch_up()
    elapsed, cpu = time.perf_counter() - t0, time.process_time() - cpu0
    await projector.close()
    return applied, elapsed, cpu


async def throughput(settings: Settings, db: Path, models: int, rounds: int) -> dict[str, Any]:
    """Rounds alternating raw read / rebuild over the same topic, both clocks (one process)."""
    raw, folded = [], []
    for _ in range(rounds):
        raw.append(await raw_read(settings))
        folded.append(await rebuild(settings, db))
    assert all(n == models for n, _, _ in raw + folded), (raw, folded)
    median = statistics.median
    raw_rate = median(n / wall for n, wall, _ in raw)
    rebuild_rate = median(n / wall for n, wall, _ in folded)
    return {
        "raw_read_events_per_s": round(raw_rate),
        "projector_rebuild_events_per_s": round(rebuild_rate),
        "raw_rounds_events_per_s": [round(n / wall) for n, wall, _ in raw],
        "rebuild_rounds_events_per_s": [round(n / wall) for n, wall, _ in folded],
        "raw_cpu_us_per_event": round(median(cpu / n for n, _, cpu in raw) * 1e6, 1),
        "rebuild_cpu_us_per_event": round(median(cpu / n for n, _, cpu in folded) * 1e6, 1),
        "rebuild_over_raw_ratio": round(rebuild_rate / raw_rate, 3),
        "rebuild_s": round(median(wall for _, wall, _ in folded), 2),
        "goal": 0.3,
    }


def pct(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(q * len(ordered)))]


async def api_latency(settings: Settings, db: Path, requests: int) -> dict[str, dict[str, float]]:
    app = create_app(settings, db_path=db)
    queries: dict[str, dict[str, str | int]] = {
        "page 1 (limit 50)": {},
        "tag filter": {"tag": "team-3"},
        "framework filter": {"framework": "huggingface"},
        "deep page (offset 9000)": {"offset": 9000},
        "limit 1000": {"limit": 1000},
    }
    out = {}
    async with app.router.lifespan_context(app):
        transport = httpx.ASGITransport(app=app)
        async with httpx.AsyncClient(transport=transport, base_url="http://localhost") as client:
            for name, params in queries.items():
                count = requests if name != "limit 1000" else max(50, requests // 20)
                for _ in range(20):  # warm up
                    await client.get("/api/models", params=params)
                times = []
                for _ in range(count):
                    t0 = time.perf_counter()
                    r = await client.get("/api/models", params=params)
                    times.append((time.perf_counter() - t0) * 1000)
                    assert r.status_code == 200, (r.status_code, r.text[:300])
                out[name] = {
                    "p50_ms": round(pct(times, 0.5), 2),
                    "p99_ms": round(pct(times, 0.99), 2),
                    "n": count,
                    "total": r.json()["total"],
                }
    return out


async def main(args: argparse.Namespace) -> dict[str, object]:
    proc, servers = None, os.environ.get("SPARKTRAINER_KAFKA_BOOTSTRAP_SERVERS")
    if not servers:
        port = free_port()
        proc, servers = start_tansu(port), f"127.0.0.1:{port}"
    try:
        settings = Settings(kafka_bootstrap_servers=servers, topic_partitions=3)
        await ensure_topics(settings)
        publish_s = await publish(settings, args.models)
        db = Path(tempfile.mkdtemp()) / "registry.sqlite3"
        rates = await throughput(settings, db, args.models, args.rounds)
        return {
            "models": args.models,
            "rounds": args.rounds,
            "publish_events_per_s": round(args.models / publish_s),
            **rates,
            "get_models": await api_latency(settings, db, args.requests),
        }
    finally:
        if proc is not None:
            proc.terminate()
            proc.wait(10)


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--models", type=int, default=10_000)
    parser.add_argument("--requests", type=int, default=2000)
    parser.add_argument("--rounds", type=int, default=3, help="rounds a side, alternating")
    result = asyncio.run(main(parser.parse_args()))
    print(json.dumps(result, indent=2))
    out = ROOT / "bench" / "results"
    out.mkdir(parents=True, exist_ok=True)
    (out / "registry_bench.json").write_text(json.dumps(result, indent=2))
