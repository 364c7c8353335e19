"""What resolving a fine-tune's parent reference costs the validator.

    python bench/reference_bench.py [--models 200] [--lookups 40] [--burst 64] [--rounds 3]

Starts its own embedded stack (SeaweedFS + tansu) unless SPARKTRAINER_KAFKA_BOOTSTRAP_SERVERS is
set, publishes ``--models`` named registrations (10 names) with a ``champion`` alias each, and
then, rounds alternating, times the validator's verdict (``validation.door.decide``, no object
store) on:

- fine-tunes naming ``NAME@champion``, resolved by a ``RegistryDirectory`` that catches up with
  the log before each lookup (the default, staleness 0);
- the same with ``validator_registry_staleness_s=5`` (a catch-up reused for 5 s);
- the baseline: fine-tunes naming the model id, with no registry view at all.

Then ``--burst`` fine-tunes are judged at once on worker threads: how many catch-ups they
shared. Wall and CPU (process) time per verdict; one JSON line on stdout.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import shutil
import statistics
import tempfile
import time
from pathlib import Path
from typing import Any

from benchkit import bench_stack, emit, percentile

from sparktrainer.bus.kafka import ensure_topics, make_producer
from sparktrainer.contracts.envelope import encode
from sparktrainer.contracts.events import Artifact, ModelRegistered
from sparktrainer.contracts.model_events import ModelAliasSet
from sparktrainer.contracts.records import Received
from sparktrainer.contracts.refs import ModelDirectory
from sparktrainer.registry.directory import RegistryDirectory
from sparktrainer.settings import Limits, Settings
from sparktrainer.validation.door import decide

NAMES = 10


def registration(i: int) -> ModelRegistered:
    return ModelRegistered(
        model_id=f"bench-ref-{i}", job_id=f"bench-ref-{i}", name="bench", framework="pytorch",
        architecture={"builder": "mlp"}, storage_prefix=f"models/bench-ref-{i}/",
        artifacts=[Artifact(path="model.pth", size_bytes=1, sha256="0" * 64)],
        register_as=f"bench-name-{i % NAMES}",
    )  # fmt: skip


async def publish(settings: Settings, models: int) -> None:
    await ensure_topics(settings)
    producer = make_producer(settings)
    await producer.start()
    try:
        events: list[Any] = [registration(i) for i in range(models)]
        events += [ModelAliasSet(name=f"bench-name-{n}", alias="champion", version=1)
                   for n in range(NAMES)]  # fmt: skip
        for e in events:
            rec = encode(e, "bench")
            await producer.send(rec.topic, rec.value, key=rec.key, headers=rec.headers)
        await producer.flush()
    finally:
        await producer.stop()


def submission(ref: str, i: int) -> Received:
    body = {"type": "finetune", "framework": "pytorch",
            "config": {"model_source": "model_id", "model_id": ref, "epochs": 1}}  # fmt: skip
    return Received("bench", 0, i, None, json.dumps(body).encode(), (), 0)


async def timed(refs: list[str], directory: ModelDirectory | None) -> tuple[list[float], float]:
    """Wall ms per verdict (one after another, each on a worker thread) and CPU ms in all."""
    walls, cpu0 = [], time.process_time()
    for i, ref in enumerate(refs):
        t0 = time.perf_counter()
        verdict = await asyncio.to_thread(decide, submission(ref, i), None, Limits(), directory)
        walls.append((time.perf_counter() - t0) * 1000)
        assert verdict.__class__.__name__ == "JobValidated", verdict
    return walls, (time.process_time() - cpu0) * 1000 / len(refs)


async def burst(directory: RegistryDirectory, n: int) -> dict[str, Any]:
    before, t0 = directory.catch_ups, time.perf_counter()
    refs = [f"bench-name-{i % NAMES}@champion" for i in range(n)]
    await asyncio.gather(*(asyncio.to_thread(decide, submission(r, i), None, Limits(), directory)
                           for i, r in enumerate(refs)))  # fmt: skip
    return {"verdicts": n, "catch_ups": directory.catch_ups - before,
            "wall_ms": round((time.perf_counter() - t0) * 1000, 1)}  # fmt: skip


def summary(walls: list[float], cpu_ms: list[float]) -> dict[str, float]:
    return {"p50_ms": round(percentile(walls, 0.5), 2), "p99_ms": round(percentile(walls, 0.99), 2),
            "cpu_ms_per_verdict": round(statistics.median(cpu_ms), 3)}  # fmt: skip


async def main_async(args: argparse.Namespace, settings: Settings) -> dict[str, Any]:
    await publish(settings, args.models)
    folder = Path(tempfile.mkdtemp(prefix="bench-refs-db-"))
    fresh = RegistryDirectory(settings, db_path=folder / "fresh.sqlite3")
    stale = RegistryDirectory(
        settings.model_copy(update={"validator_registry_staleness_s": 5.0}),
        db_path=folder / "stale.sqlite3",
    )
    runs: dict[str, tuple[list[float], list[float]]] = {
        k: ([], []) for k in ("fresh", "stale", "id")
    }
    async with fresh, stale:
        for warm in (fresh, stale):  # the first lookup folds the whole registry: not timed
            await asyncio.to_thread(
                decide, submission("bench-name-0@champion", 0), None, Limits(), warm
            )
        alias_refs = [f"bench-name-{i % NAMES}@champion" for i in range(args.lookups)]
        id_refs = [f"bench-ref-{i % NAMES}" for i in range(args.lookups)]
        plan: list[tuple[str, list[str], ModelDirectory | None]] = [
            ("fresh", alias_refs, fresh), ("stale", alias_refs, stale), ("id", id_refs, None)
        ]  # fmt: skip
        for _ in range(args.rounds):
            for key, refs, d in plan:
                walls, cpu = await timed(refs, d)
                runs[key][0].extend(walls)
                runs[key][1].append(cpu)
        shared = await burst(fresh, args.burst)
    shutil.rmtree(folder, ignore_errors=True)
    out = {k: summary(*v) for k, v in runs.items()}
    base = out["id"]["p50_ms"]
    return {
        "bench": "reference_resolution", "models": args.models, "lookups": args.lookups,
        "rounds": args.rounds, **out, "burst": shared,
        "fresh_over_id_p50": round(out["fresh"]["p50_ms"] / base, 2),
        "stale_over_id_p50": round(out["stale"]["p50_ms"] / base, 2),
    }  # fmt: skip


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--models", type=int, default=200)
    parser.add_argument("--lookups", type=int, default=40)
    parser.add_argument("--burst", type=int, default=64)
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--from-env", action="store_true", help="use SPARKTRAINER_* servers")
    args = parser.parse_args()
    with bench_stack("bench-refs-", from_env=args.from_env) as settings:
        emit(asyncio.run(main_async(args, settings)))


if __name__ == "__main__":
    main()
