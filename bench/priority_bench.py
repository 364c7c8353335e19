"""Submission of a high-priority job -> its first training step, while N low-priority jobs wait,
with the trainer's priorities on vs off (SPARKTRAINER_SCHEDULE_PRIORITIES), side by side.

    python bench/priority_bench.py [--queued 20] [--rounds 2]   # its own embedded stack

One validator and one trainer (class gpu, as set by SPARKTRAINER_TRAINER_CLASSES) run in this
process; rounds alternate on and off on the same warm trainer. A round submits N tiny low jobs,
waits until the first one trains, submits the high one, and times it from just before its
submission to its first JobProgress (sent right after optimizer step 1). Wall clock, and CPU
time (this process plus the trainer's warm worker) spent meanwhile. The round then drains.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import statistics
import sys
import time
import uuid
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent))

from benchkit import EventTail, bench_stack, emit

from consumers.validator import build_runtime
from sparktrainer.bus.kafka import make_producer
from sparktrainer.contracts.events import JobCompleted, JobFailed, JobProgress
from sparktrainer.contracts.topics import JOBS_LIFECYCLE, JOBS_SUBMITTED
from sparktrainer.scheduling.picker import PriorityWaiting
from sparktrainer.services.trainer import TrainerService
from sparktrainer.settings import Settings
from sparktrainer.storage.s3 import ObjectStore

ENDED = (JobCompleted, JobFailed)


def job(priority: str) -> dict[str, Any]:
    """A tiny digits MLP job of class gpu (1 epoch: a second or less of training)."""
    return {
        "job_id": f"bench-{priority}-{uuid.uuid4().hex[:8]}",
        "type": "train",
        "framework": "pytorch",
        "priority": priority,
        "resources": {"gpus": 1},
        "config": {"architecture": "custom", "input_size": 64, "output_size": 10,
                   "hidden_layers": [32], "epochs": 1, "batch_size": 64,
                   "data": {"source": "digits"}},
    }  # fmt: skip


def cpu_s(trainer: TrainerService) -> float:
    """CPU seconds of this process and the trainer's warm worker."""
    own = time.process_time()
    pid = trainer.worker.pid
    if pid is None:
        return own
    # Linux: utime and stime of the child, fields 14 and 15 of /proc/PID/stat (after the name).
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return own + (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


async def one_round(settings: Settings, trainer: TrainerService, queued: int) -> dict[str, float]:
    """N lows queued behind the first, then the high one: its latency to step 1."""
    producer = make_producer(settings)
    await producer.start()
    lows = [job("low") for _ in range(queued + 1)]
    high = job("high")
    ids = {j["job_id"] for j in (*lows, high)}
    try:
        async with EventTail(settings, (JOBS_LIFECYCLE,)) as log:
            for j in lows:
                await producer.send_and_wait(JOBS_SUBMITTED, json.dumps(j).encode())
            await log.until(lambda e: isinstance(e, JobProgress) and e.job_id in ids, 1, 120)
            wall, cpu = time.perf_counter(), cpu_s(trainer)
            await producer.send_and_wait(JOBS_SUBMITTED, json.dumps(high).encode())
            hid = high["job_id"]
            await log.until(lambda e: isinstance(e, JobProgress) and e.job_id == hid, 1, 900)
            result = {"wall_s": time.perf_counter() - wall, "cpu_s": cpu_s(trainer) - cpu}
            await log.until(lambda e: isinstance(e, ENDED) and e.job_id in ids, len(ids), 900)
    finally:
        await producer.stop()
    return result


async def run(settings: Settings, queued: int, rounds: int) -> dict[str, Any]:
    """A private stack's topics start empty: fresh groups read from their start."""
    group = f"bench-priority-{uuid.uuid4().hex[:8]}"
    mine = settings.model_copy(update={"trainer_classes": "gpu", "schedule_aging_s": 3600.0})
    validator = build_runtime(settings, ObjectStore.from_settings(settings),
                              group_id=f"{group}-validator")  # fmt: skip
    trainer = TrainerService(mine, group_id=group)
    tasks = [asyncio.create_task(validator.run()), asyncio.create_task(trainer.run())]
    await validator.wait_positioned()
    await trainer.wait_positioned(600)
    waiting = trainer.jobs.waiting
    assert isinstance(waiting, PriorityWaiting)
    found: dict[str, list[dict[str, float]]] = {"on": [], "off": []}
    try:
        for _ in range(rounds):
            for mode in ("on", "off"):  # alternating: machine noise hits both
                waiting.priorities = mode == "on"
                found[mode].append(await one_round(settings, trainer, queued))
    finally:
        validator.stop()
        trainer.stop()
        await asyncio.gather(*tasks)
    return summary(found, queued)


def summary(found: dict[str, list[dict[str, float]]], queued: int) -> dict[str, Any]:
    med = {m: {k: statistics.median(r[k] for r in rs) for k in ("wall_s", "cpu_s")}
           for m, rs in found.items()}  # fmt: skip
    return {
        "queued_low_jobs": queued,
        "rounds": found,
        "priorities_on_wall_s": round(med["on"]["wall_s"], 3),
        "priorities_off_wall_s": round(med["off"]["wall_s"], 3),
        "priorities_on_cpu_s": round(med["on"]["cpu_s"], 3),
        "priorities_off_cpu_s": round(med["off"]["cpu_s"], 3),
        "wall_ratio_off_over_on": round(med["off"]["wall_s"] / med["on"]["wall_s"], 2),
        "cpu_ratio_off_over_on": round(med["off"]["cpu_s"] / max(med["on"]["cpu_s"], 1e-6), 2),
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--queued", type=int, default=20)
    parser.add_argument("--rounds", type=int, default=2)
    args = parser.parse_args()
    with bench_stack("priority-") as settings:
        emit(asyncio.run(run(settings, args.queued, args.rounds)))


if __name__ == "__main__":
    main()
