# ruff: noqa: E402 - imports follow the sys.path set-up that lets this run as a script
"""Job start -> first training step, like against like, rounds alternating.

    python bench/start_latency.py                 # starts an embedded SeaweedFS (+ tansu)
    SPARKTRAINER_S3_ENDPOINT=... python bench/start_latency.py --s3-from-env --rounds 5

Every side runs the same tiny job (an MLP on synthetic data) through the same recipe code
(``run_recipe_job``) against the same S3 server, and stops its clock at the job's first
JobProgress (sent right after optimizer step 1: the S3 checks, data, model and step 1 are in).

- warm: a job handed to a running warm worker (its torch imported, one job done) vs the same
  job as a plain ``run_recipe_job`` call in this process (torch imported, one job done): what
  the worker's process boundary (pipe, event relay) adds.
- cold: a new warm-worker process (spawn, its warm imports: torch, torchvision, scikit-learn's
  data sets, the recipe; then the job) vs a fresh Python process that makes the same imports
  and runs the job itself (what a runner without warm workers pays per job), both timed from
  the spawn to the first step.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import statistics
import subprocess
import sys
import tempfile
import time
import uuid
from pathlib import Path
from typing import Any

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))

from benchkit import ROOT, bench_stack, emit, stack_env

from sparktrainer.contracts.events import JobProgress, JobValidated
from sparktrainer.contracts.jobspec import DataSpec, MLPConfig
from sparktrainer.settings import Settings
from sparktrainer.training.worker.warm import WarmWorker

CLOCK = time.perf_counter
FIRST_STEP = "FIRST-STEP"


def tiny_job() -> JobValidated:
    """A small MLP on synthetic data: the job's own work is not what is measured."""
    config = MLPConfig(
        input_size=32, output_size=4, hidden_layers=[64], epochs=1, data=DataSpec(num_samples=256)
    )
    return JobValidated(job_id=f"latency-{uuid.uuid4().hex[:10]}", name="latency", type="train",
                        framework="pytorch", config_kind=config.kind, config=config)  # fmt: skip


def first_step_marker(marks: list[float]) -> Any:
    """An event callback that stamps the first JobProgress."""

    def on_event(event: Any) -> None:
        if isinstance(event, JobProgress) and not marks:
            marks.append(CLOCK())

    return on_event


def in_process(settings: Settings) -> float:
    """Seconds from calling run_recipe_job to its first step, in this (warm) process."""
    from sparktrainer.storage.s3 import ObjectStore
    from sparktrainer.training.job.context import JobContext
    from sparktrainer.training.recipes import run_recipe_job

    marks: list[float] = []
    with tempfile.TemporaryDirectory(prefix="latency-") as tmp:
        started = CLOCK()
        store, mark = ObjectStore.from_settings(settings), first_step_marker(marks)
        ctx = JobContext(job=tiny_job(), store=store, settings=settings, workdir=Path(tmp),
                         emit=mark)  # fmt: skip
        run_recipe_job(ctx)
    return marks[0] - started


async def warm_worker(worker: WarmWorker) -> float:
    """Seconds from handing a job to a running warm worker to its first step."""
    marks: list[float] = []
    mark = first_step_marker(marks)

    async def on_event(event: Any) -> None:
        mark(event)

    started = CLOCK()
    outcome = await worker.run(tiny_job(), 1, on_event)
    assert outcome.status == "completed", outcome.reason
    return marks[0] - started


async def new_worker(settings: Settings) -> float:
    """Seconds from starting a new warm-worker process to its first job's first step."""
    started = CLOCK()
    worker = WarmWorker(settings)
    await worker.start()
    try:
        marks: list[float] = []
        mark = first_step_marker(marks)

        async def on_event(event: Any) -> None:
            mark(event)

        outcome = await worker.run(tiny_job(), 1, on_event)
        assert outcome.status == "completed", outcome.reason
        return marks[0] - started
    finally:
        await worker.stop()


def fresh_process(settings: Settings) -> float:
    """Seconds from spawning a Python process that runs the job itself to its first step."""
    env = {**os.environ, **stack_env(settings)}
    started = CLOCK()
    proc = subprocess.Popen([sys.executable, __file__, "--one-job"], cwd=ROOT, env=env,
                            stdout=subprocess.PIPE, text=True)  # fmt: skip
    assert proc.stdout is not None
    for line in proc.stdout:
        if line.startswith(FIRST_STEP):
            stamp = CLOCK()
            proc.stdout.read()
            break
    else:
        raise RuntimeError(f"the fresh process ended without a first step ({proc.wait()})")
    assert proc.wait(120) == 0
    return stamp - started


def one_job() -> None:
    """``--one-job``: import what a warm worker imports, then run the tiny job here, printing
    a line at its first step (the same work as a new worker process, minus the worker)."""
    from sparktrainer.training.worker.child import warm_imports

    warm_imports()
    settings = Settings(progress_every_s=0.0)

    def on_step(event: Any) -> None:
        if isinstance(event, JobProgress) and not printed:
            printed.append(True)
            print(FIRST_STEP, flush=True)

    printed: list[bool] = []
    from sparktrainer.storage.s3 import ObjectStore
    from sparktrainer.training.job.context import JobContext
    from sparktrainer.training.recipes import run_recipe_job

    with tempfile.TemporaryDirectory(prefix="latency-") as tmp:
        run_recipe_job(JobContext(job=tiny_job(), store=ObjectStore.from_settings(settings),
                                  settings=settings, workdir=Path(tmp), emit=on_step))  # fmt: skip


async def measure(settings: Settings, rounds: int) -> dict[str, Any]:
    """Warm pairs and cold pairs, each pair's order alternating round by round."""
    warm: dict[str, list[float]] = {"worker": [], "in_process": []}
    cold: dict[str, list[float]] = {"new_worker": [], "fresh_process": []}
    worker = WarmWorker(settings)
    await worker.start()
    try:
        await warm_worker(worker)  # both warm sides run one job first
        in_process(settings)
        for n in range(rounds):
            sides = [("worker", lambda: warm_worker(worker)), ("in_process", None)]
            for name, run in sides if n % 2 == 0 else sides[::-1]:
                warm[name].append(await run() if run else in_process(settings))
    finally:
        await worker.stop()
    for n in range(rounds):
        for name in (
            ("new_worker", "fresh_process") if n % 2 == 0 else ("fresh_process", "new_worker")
        ):
            cold[name].append(
                await new_worker(settings) if name == "new_worker" else fresh_process(settings)
            )
    return {"warm": warm, "cold": cold}


def summary(found: dict[str, Any], rounds: int) -> dict[str, Any]:
    """Medians, ratios and goals of both pairs."""
    med = {side: statistics.median(v) for pair in found.values() for side, v in pair.items()}
    return {
        "rounds": rounds,
        **{pair: {side: [round(v, 4) for v in vals] for side, vals in sides.items()}
           for pair, sides in found.items()},
        "median_s": {k: round(v, 4) for k, v in med.items()},
        "warm_overhead_ms": round(1000 * (med["worker"] - med["in_process"]), 1),
        "cold_ratio": round(med["new_worker"] / med["fresh_process"], 3),
        "warm_vs_fresh_process_speedup": round(med["fresh_process"] / med["worker"], 1),
        "goal_warm_s": 0.1,
        "goal_cold_ratio": 1.1,
    }  # fmt: skip


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--s3-from-env", action="store_true",
                        help="SPARKTRAINER_S3_* from the environment, no temp stack")  # fmt: skip
    parser.add_argument("--one-job", action="store_true", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.one_job:
        one_job()
        return
    with bench_stack("latency-", from_env=args.s3_from_env) as stack:
        settings = stack.model_copy(update={"progress_every_s": 0.0})
        emit(summary(asyncio.run(measure(settings, args.rounds)), args.rounds))


if __name__ == "__main__":
    main()
