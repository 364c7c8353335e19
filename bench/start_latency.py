"""Time from handing a job to a warm WarmWorker to its first training step, vs a fresh
``python -c "import torch, torchvision"`` (goal: well under 0.1 s vs seconds).

    python bench/start_latency.py            # starts an embedded SeaweedFS (+ tansu) in a temp dir
    SPARKTRAINER_S3_ENDPOINT=... python bench/start_latency.py --s3-from-env

The first step is the recipe's first JobProgress (sent right after optimizer step 1), so the
figure covers sending the job, the S3 checks (registered? checkpoint?), data, model and step 1.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import statistics
import subprocess
import sys
import tempfile
import time
import uuid
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from sparktrainer.contracts.events import JobProgress, JobStarted, JobValidated
from sparktrainer.contracts.jobspec import DataSpec, MLPConfig
from sparktrainer.settings import Settings
from sparktrainer.training.worker.warm import WarmWorker


def tiny_job() -> JobValidated:
    """A small MLP on synthetic data: the job's own work is not what is measured."""
    config = MLPConfig(
        input_size=32,
        output_size=4,
        hidden_layers=[64],
        epochs=1,
        data=DataSpec(num_samples=256),
    )
    return JobValidated(
        job_id=f"latency-{uuid.uuid4().hex[:10]}",
        name="latency",
        type="train",
        framework="pytorch",
        config_kind=config.kind,
        config=config,
    )


async def warm_latencies(settings: Settings, rounds: int) -> dict[str, Any]:
    """Start a worker, run one job to warm caches, then time ``rounds`` more."""
    worker = WarmWorker(settings)
    started = time.perf_counter()
    await worker.start()
    cold_start_s = time.perf_counter() - started
    to_started, to_step = [], []
    try:
        for n in range(rounds + 1):
            marks: dict[str, float] = {}
            handed = time.perf_counter()

            async def on_event(event: Any, marks: dict[str, float] = marks) -> None:
                kind = "started" if isinstance(event, JobStarted) else "step"
                if isinstance(event, JobStarted | JobProgress) and kind not in marks:
                    marks[kind] = time.perf_counter()

            outcome = await worker.run(tiny_job(), 1, on_event)
            assert outcome.status == "completed", outcome.reason
            if n:  # round 0 warms the data and allocator paths
                to_started.append(marks["started"] - handed)
                to_step.append(marks["step"] - handed)
    finally:
        await worker.stop()
    return {
        "worker_cold_start_s": round(cold_start_s, 3),
        "child_import_s": round(worker.import_s or 0.0, 3),
        "to_job_started_s": [round(v, 4) for v in to_started],
        "to_first_step_s": [round(v, 4) for v in to_step],
    }


def fresh_imports(rounds: int) -> list[float]:
    """Seconds for a fresh interpreter to import torch and torchvision."""
    times = []
    for _ in range(rounds):
        started = time.perf_counter()
        subprocess.run([sys.executable, "-c", "import torch, torchvision"], check=True)
        times.append(time.perf_counter() - started)
    return times


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument(
        "--s3-from-env",
        action="store_true",
        help="use SPARKTRAINER_S3_* from the environment instead of a temp stack",
    )
    args = parser.parse_args()
    stack = None
    if args.s3_from_env:
        settings = Settings()
    else:
        from sparktrainer.embedded import EmbeddedStack

        stack = EmbeddedStack(Path(tempfile.mkdtemp(prefix="latency-")), services=())
        settings = stack.start(with_services=False)
    try:
        warm = asyncio.run(warm_latencies(settings, args.rounds))
    finally:
        if stack is not None:
            stack.stop()
    fresh = fresh_imports(args.rounds)
    step_s, import_s = statistics.median(warm["to_first_step_s"]), statistics.median(fresh)
    print(
        json.dumps(
            {
                **warm,
                "fresh_import_torch_torchvision_s": [round(v, 3) for v in fresh],
                "median_first_step_s": round(step_s, 4),
                "median_fresh_import_s": round(import_s, 3),
                "speedup": round(import_s / step_s, 1),
                "goal_s": 0.1,
            }
        )
    )


if __name__ == "__main__":
    main()
