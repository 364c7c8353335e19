# ruff: noqa: E402 - imports follow the sys.path set-up that lets this run as a script
"""Checkpoint upload throughput vs raw minio, and training samples/s with vs without checkpoints.

    python bench/checkpoint_bench.py                    # starts its own embedded stack (S3)
    python bench/checkpoint_bench.py --file-mb 32 --files 4 --samples 32768 --rounds 3

Upload: the same files go to the same S3 server three ways, rounds alternating: a plain
``minio.Minio.fput_object`` (the baseline), ``ObjectStore.put_file`` (retries, error mapping),
and ``JobContext.checkpoints.save`` (stage, upload on the background thread, CheckpointSaved),
timed until ``checkpoints.wait`` returns. MB/s and the ratio of medians to the baseline (goal 0.9).

Training: the PyTorch recipe (``run_recipe_job``) on the guide's "Initial Model Training" MLP with
synthetic data, storing to the real S3 server, once as it ships (a checkpoint every epoch:
serialize, then upload in the background) and once with the loop's checkpoint step turned
off. samples/s from the first step's progress event to the last epoch's (so every checkpoint
but the final upload, which overlaps the model save, is inside); ratio of medians (goal 0.97).
"""

from __future__ import annotations

import argparse
import os
import statistics
import sys
import tempfile
import time
import uuid
from pathlib import Path
from typing import Any
from unittest import mock
from urllib.parse import urlparse

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))

from benchkit import bench_stack, emit
from minio import Minio

from sparktrainer import guide
from sparktrainer.contracts.events import JobProgress, JobValidated
from sparktrainer.contracts.kinds import kind_of
from sparktrainer.settings import Settings
from sparktrainer.storage.s3 import ObjectStore
from sparktrainer.training.job.context import JobContext

CLOCK = time.perf_counter  # uploads: always the wall clock
TRAIN_CLOCK = time.perf_counter  # training rounds: process CPU time with --cpu-time


def raw_client(settings: Settings) -> Minio:
    """A plain minio client on the same server (what a user would write by hand)."""
    assert settings.s3_endpoint and settings.s3_access_key and settings.s3_secret_key
    return Minio(
        urlparse(settings.s3_endpoint).netloc,
        access_key=settings.s3_access_key.get_secret_value(),
        secret_key=settings.s3_secret_key.get_secret_value(),
        secure=False,
        region=settings.s3_region,
    )


def bench_job(config_kind: str, config: dict[str, Any], name: str = "bench") -> JobValidated:
    """A validated job as the trainer receives it."""
    return JobValidated(
        job_id=f"{name}-{uuid.uuid4().hex[:8]}",
        name=name,
        type="train",
        framework="pytorch",
        config_kind=config_kind,
        config=kind_of(config_kind).config.model_validate(config),
    )


# -- uploads -----------------------------------------------------------------------------


def upload_raw(client: Minio, bucket: str, path: Path) -> float:
    """Seconds for a plain fput_object of one file."""
    t0 = CLOCK()
    client.fput_object(bucket, f"bench/raw/{path.name}", str(path))
    return CLOCK() - t0


def upload_store(store: ObjectStore, path: Path) -> float:
    """Seconds for ObjectStore.put_file of one file."""
    t0 = CLOCK()
    store.put_file(f"bench/store/{path.name}", path)
    return CLOCK() - t0


def upload_context(ctx: JobContext, path: Path, step: int) -> float:
    """Seconds for JobContext.checkpoints.save of one file until its upload is done."""
    link = ctx.workdir / f"resume-{step}.pt"
    os.link(path, link)  # checkpoints.save moves its file away: hand it a link
    t0 = CLOCK()
    ctx.checkpoints.save(link, epoch=step, step=step)
    ctx.checkpoints.wait()
    return CLOCK() - t0


def uploads(settings: Settings, file_mb: int, count: int, rounds: int) -> dict[str, Any]:
    """The three upload paths, interleaved file by file (rotating order) over the same files."""
    store = ObjectStore.from_settings(settings)
    store.ensure_bucket()
    client = raw_client(settings)
    job = bench_job("pytorch.mlp", {"input_size": 4, "output_size": 2})
    events: list[Any] = []
    seconds = {"raw": 0.0, "put": 0.0, "ctx": 0.0}
    per_round: dict[str, list[float]] = {k: [] for k in seconds}
    with tempfile.TemporaryDirectory(prefix="ckpt-bench-") as tmp_name:
        tmp = Path(tmp_name)
        ctx = JobContext(job=job, store=store, settings=settings, workdir=tmp, emit=events.append)
        files = []
        for i in range(count):
            path = tmp / f"file-{i}.pt"
            path.write_bytes(os.urandom(file_mb * 2**20))  # incompressible, like weights
            files.append(path)
        runs = {
            "raw": lambda path, step: upload_raw(client, settings.s3_bucket, path),
            "put": lambda path, step: upload_store(store, path),
            "ctx": lambda path, step: upload_context(ctx, path, step),
        }
        for fn in runs.values():  # warm-up: connections, first objects
            fn(files[0], 0)
        step = 0
        for _ in range(rounds):
            spent = dict.fromkeys(seconds, 0.0)
            for i, path in enumerate(files):
                order = list(runs)[i % 3 :] + list(runs)[: i % 3]
                for name in order:
                    step += 1
                    spent[name] += runs[name](path, step)
            for name, s in spent.items():
                per_round[name].append(file_mb * count / s)
    assert len(events) == step // 3 + 1, "one CheckpointSaved per checkpoints.save"
    store.delete_prefix("bench/")
    store.delete_prefix(f"checkpoints/{job.job_id}/")
    median = {k: statistics.median(v) for k, v in per_round.items()}
    return {
        "files": count,
        "file_mb": file_mb,
        "rounds": rounds,
        "raw_fput_object_mb_per_s": [round(v, 1) for v in per_round["raw"]],
        "put_file_mb_per_s": [round(v, 1) for v in per_round["put"]],
        "save_checkpoint_mb_per_s": [round(v, 1) for v in per_round["ctx"]],
        "put_file_ratio": round(median["put"] / median["raw"], 3),
        "save_checkpoint_ratio": round(median["ctx"] / median["raw"], 3),
        "goal": 0.9,
    }


# -- training with and without checkpoints -----------------------------------------------


def training_round(
    settings: Settings, args: argparse.Namespace, checkpoints: bool
) -> tuple[float, float]:
    """samples/s (wall, CPU) of the recipe from its first step's progress event to its last
    epoch's: the wall clock shows an upload that blocks, the CPU clock resists other load."""
    from sparktrainer.training.loop.training_loop import TrainingLoop
    from sparktrainer.training.recipes import run_recipe_job

    config = {
        **guide.by_name("Initial Model Training")["config"],
        "epochs": args.epochs,
        "data": {"num_samples": args.samples, "validation_split": 0.1},
    }
    job = bench_job("pytorch.mlp", config, "ckpt-on" if checkpoints else "ckpt-off")
    marks: list[tuple[float, float]] = []
    saved: list[Any] = []

    def emit_event(event: Any) -> None:
        if isinstance(event, JobProgress):
            marks.append((time.perf_counter(), TRAIN_CLOCK()))
        else:
            saved.append(event)

    store = ObjectStore.from_settings(settings)
    step = getattr(TrainingLoop, "_checkpoint", None)
    assert step is not None, "the loop's checkpoint step moved: update this bench"

    def timed(self: Any) -> None:  # the pause the training loop itself sees
        t0 = TRAIN_CLOCK()
        step(self)
        pauses.append(TRAIN_CLOCK() - t0)

    pauses: list[float] = []
    with tempfile.TemporaryDirectory(prefix="ckpt-train-") as tmp:
        ctx = JobContext(
            job=job, store=store, settings=settings, workdir=Path(tmp), emit=emit_event
        )
        with mock.patch.object(
            TrainingLoop, "_checkpoint", timed if checkpoints else lambda s: None
        ):
            run_recipe_job(ctx)
    store.delete_prefix(f"models/{job.job_id}/")
    n_train = round(args.samples * 0.9)
    wall, cpu = (marks[-1][i] - marks[0][i] for i in (0, 1))
    if checkpoints:
        PAUSES.append((statistics.mean(pauses), cpu / args.epochs))
    return (args.epochs * n_train - 64) / wall, (args.epochs * n_train - 64) / cpu


PAUSES: list[tuple[float, float]] = []  # (mean checkpoint pause, mean epoch) per round, s


def training(settings: Settings, args: argparse.Namespace) -> dict[str, Any]:
    """Alternating rounds with and without per-epoch checkpoints."""
    if args.cpu_time:
        use_cpu_time()
    training_round(settings, args, True)  # warm-up: kernels, allocator, S3 connections
    training_round(settings, args, False)
    off, on = [], []
    for _ in range(args.rounds):
        off.append(training_round(settings, args, False))
        on.append(training_round(settings, args, True))
    return {
        "model": "mlp 784-512-256-128-10 (the guide's Initial Model Training)",
        "samples": args.samples,
        "epochs": args.epochs,
        "without_checkpoints_samples_per_s": [round(v[1]) for v in off],
        "with_checkpoints_samples_per_s": [round(v[1]) for v in on],
        "without_checkpoints_wall_samples_per_s": [round(v[0]) for v in off],
        "with_checkpoints_wall_samples_per_s": [round(v[0]) for v in on],
        "ratio": round(_median(on, 1) / _median(off, 1), 4),
        "wall_ratio": round(_median(on, 0) / _median(off, 0), 4),
        # What the loop waits for per epoch (serialize + hand off; the upload runs beside it)
        "checkpoint_pause_ms": round(1000 * statistics.median(p for p, _ in PAUSES), 1),
        "epoch_s": round(statistics.median(e for _, e in PAUSES), 3),
        "clock": "process_time, 1 torch thread" if args.cpu_time else "wall",
        "goal": 0.97,
    }


def _median(rounds: list[tuple[float, float]], clock: int) -> float:
    return statistics.median(r[clock] for r in rounds)


def run(settings: Settings, args: argparse.Namespace) -> dict[str, Any]:
    """Both measurements on one stack (uploads on the wall clock, always)."""
    return {
        "upload": uploads(settings, args.file_mb, args.files, args.rounds),
        "training": training(settings, args),
    }


def parser() -> argparse.ArgumentParser:
    """The command line (run_all reuses the defaults)."""
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--file-mb", type=int, default=32, help="size of each uploaded file")
    p.add_argument("--files", type=int, default=4)
    p.add_argument("--samples", type=int, default=32768, help="training samples per epoch")
    p.add_argument("--epochs", type=int, default=3)
    p.add_argument("--rounds", type=int, default=3)
    p.add_argument("--from-env", action="store_true", help="use SPARKTRAINER_* servers, no stack")
    p.add_argument(
        "--cpu-time",
        action="store_true",
        help="training rounds on one torch thread, timed by this process's CPU time (the "
        "training thread plus the upload thread): steady on a busy shared machine",
    )
    return p


def use_cpu_time() -> None:
    """Time training by process CPU time on one torch thread (see --cpu-time)."""
    import torch

    global TRAIN_CLOCK
    TRAIN_CLOCK = time.process_time
    torch.set_num_threads(1)


def main() -> None:
    args = parser().parse_args()
    with bench_stack("ckpt-bench-", from_env=args.from_env) as settings:
        emit(run(settings, args))


if __name__ == "__main__":
    main()
