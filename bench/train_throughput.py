"""Recipe samples/s vs a bare PyTorch loop on the same model and data, in one process.

    python bench/train_throughput.py                 # custom ResNet on the CPU (or GPU if any)
    python bench/train_throughput.py --model resnet18 --shape 3 32 32 --batch 256 --samples 16384

The recipe runs through ``run_recipe_job`` (checkpoint every epoch to an in-memory store, progress
events, stop checks, metrics); the bare loop is forward/backward/step over the same batches.
Both are timed from the end of their first step to the end (the recipe by its progress events,
so its per-epoch checkpoints count), by the wall clock and (``--cpu-time``) the training
thread's CPU clock; the bare loop's optimizer is checked to have the recipe's settings.
Rounds alternate so machine noise hits both; the ratios of the medians are printed (>= 0.97).
"""

from __future__ import annotations

import argparse
import json
import statistics
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import torch
import torch.nn.functional as F

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from sparktrainer.contracts.events import JobProgress, JobValidated
from sparktrainer.contracts.kinds import kind_of
from sparktrainer.settings import Settings
from sparktrainer.training.job.context import JobContext
from sparktrainer.training.loop.device import pick_device, seed_everything
from sparktrainer.training.loop.optim import build_optimizer
from sparktrainer.training.pytorch.data import load_data
from sparktrainer.training.pytorch.model_io import resolve_model
from sparktrainer.training.recipes import run_recipe_job

CPU_CLOCK = time.perf_counter  # --cpu-time: the training thread's CPU time
Stamp = tuple[float, float]  # (wall, cpu)


def stamp() -> Stamp:
    """Both clocks at once: every row reports wall time beside CPU time."""
    return time.perf_counter(), CPU_CLOCK()


def rates(samples: float, start: Stamp, end: Stamp) -> tuple[float, float]:
    """samples/s by the wall clock and by the CPU clock."""
    return samples / (end[0] - start[0]), samples / (end[1] - start[1])


class MemoryStore:
    """Just enough of ObjectStore for recipe runs (and resumes), in memory."""

    bucket = "bench"

    def __init__(self) -> None:
        self.objects: dict[str, bytes] = {}

    def put_file(self, key: str, path: Path, sha256: str | None = None) -> None:
        self.objects[key] = path.read_bytes()  # the digest ObjectStore keeps as metadata: unused

    def get_file(self, key: str, path: Path) -> None:
        path.write_bytes(self.objects[key])

    def get_json(self, key: str) -> Any:
        return json.loads(self.objects[key])

    def exists(self, key: str) -> bool:
        return key in self.objects

    def copy(self, source: str, key: str) -> None:
        self.objects[key] = self.objects[source]  # latest.pt -> previous.pt, as S3 copies

    def delete_prefix(self, prefix: str) -> int:
        keys = [k for k in self.objects if k.startswith(prefix)]
        for key in keys:
            del self.objects[key]
        return len(keys)


def job_config(args: argparse.Namespace, epochs: int) -> tuple[str, dict[str, Any]]:
    """The job both loops train: a torchvision model or the custom ResNet, synthetic data."""
    common = {
        "epochs": epochs,
        "batch_size": args.batch,
        "precision": args.precision,
        "data": {"num_samples": args.samples, "validation_split": 0.0},
    }
    if args.model == "resnet":
        return "pytorch.resnet", {
            **common,
            "num_classes": 10,
            "num_blocks": [1, 1],
            "channels": [16, 32],
            "input_shape": args.shape,
        }
    return "pytorch.torchvision", {
        **common,
        "model_name": args.model,
        "num_classes": 10,
        "pretrained": False,
        "freeze_layers": False,
        "input_shape": args.shape,
    }


def recipe_round(args: argparse.Namespace, epochs: int, n: int) -> tuple[float, float]:
    """samples/s (wall, CPU) of run_recipe_job from its first step's progress event to its last."""
    kind, config = job_config(args, epochs)
    marks: list[Stamp] = []

    def emit(event: Any) -> None:
        if isinstance(event, JobProgress):
            marks.append(stamp())

    job = JobValidated(
        job_id=f"bench-{n}",
        name="bench",
        type="train",
        framework="pytorch",
        config_kind=kind,
        config=kind_of(kind).config.model_validate(config),
    )
    with tempfile.TemporaryDirectory() as tmp:
        ctx = JobContext(
            job=job,
            store=MemoryStore(),  # type: ignore[arg-type]
            settings=Settings(progress_every_s=1.0),
            workdir=Path(tmp),
            emit=emit,
        )
        run_recipe_job(ctx)
    return rates(epochs * args.samples - args.batch, marks[0], marks[-1])


def bare_round(args: argparse.Namespace, epochs: int) -> tuple[float, float]:
    """samples/s of a plain loop: same model, data on the device, same batches and optimizer."""
    kind, config = job_config(args, epochs)
    spec = kind_of(kind).config.model_validate(config)
    device = pick_device()
    seed_everything(spec.seed)
    with tempfile.TemporaryDirectory() as tmp:
        model = resolve_model(spec, None, Path(tmp)).model.to(device)  # type: ignore[arg-type]
    data = load_data(spec.data, tuple(args.shape), 10)
    x, y = data.x_train.to(device), data.y_train.to(device)
    opt = torch.optim.Adam(model.parameters(), lr=spec.learning_rate, fused=True)
    assert opt.defaults == build_optimizer(model.parameters(), spec).defaults, "as the recipe"
    dtype = {"bfloat16": torch.bfloat16, "float16": torch.float16}.get(args.precision)
    scaler = (
        torch.amp.GradScaler("cuda") if dtype is torch.float16 and device.type == "cuda" else None
    )
    use_amp = dtype is not None and (device.type == "cuda" or dtype is torch.bfloat16)
    model.train()
    start = stamp()
    for epoch in range(epochs):
        order = torch.randperm(len(x), device=device)
        for i in range(0, len(x), args.batch):
            if epoch == 0 and i == args.batch:  # time from the end of step 1, as the recipe
                sync()
                start = stamp()
            idx = order[i : i + args.batch]
            with torch.autocast(device.type, dtype=dtype, enabled=use_amp):
                loss = F.cross_entropy(model(x[idx]), y[idx])
            opt.zero_grad(set_to_none=True)
            if scaler is not None:
                scaler.scale(loss).backward()
                scaler.step(opt)
                scaler.update()
            else:
                loss.backward()
                opt.step()
    sync()
    return rates(epochs * len(x) - args.batch, start, stamp())


def sync() -> None:
    if torch.cuda.is_available():
        torch.cuda.synchronize()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model", default="resnet", help="resnet (custom) or a torchvision name")
    parser.add_argument("--shape", type=int, nargs=3, default=[3, 16, 16])
    parser.add_argument("--batch", type=int, default=64)
    parser.add_argument("--samples", type=int, default=4096)
    parser.add_argument("--epochs", type=int, default=4)
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--precision", default="float32")
    parser.add_argument(
        "--cpu-time",
        action="store_true",
        help="CPU only: one torch thread, timed by the training thread's CPU "
        "time (immune to other processes on a busy shared machine)",
    )
    args = parser.parse_args()
    if args.cpu_time:
        global CPU_CLOCK
        CPU_CLOCK = time.thread_time
        torch.set_num_threads(1)
    if torch.cuda.is_available():
        torch.backends.cudnn.benchmark = True
    bare_round(args, 1)  # warm up kernels and allocators for both
    recipe_round(args, 1, 0)
    bare, recipe = [], []
    for n in range(args.rounds):
        bare.append(bare_round(args, args.epochs))
        recipe.append(recipe_round(args, args.epochs, n + 1))
    wall = statistics.median(r[0] for r in recipe) / statistics.median(b[0] for b in bare)
    ratio = statistics.median(r[1] for r in recipe) / statistics.median(b[1] for b in bare)
    best_ratio = max(r[1] for r in recipe) / max(b[1] for b in bare)  # least disturbed rounds
    print(
        json.dumps(
            {
                "device": str(pick_device()),
                "model": args.model,
                "shape": args.shape,
                "batch": args.batch,
                "samples": args.samples,
                "epochs": args.epochs,
                "precision": args.precision,
                "threads": torch.get_num_threads(),
                "clock": "thread_time" if args.cpu_time else "wall (both columns)",
                "bare_samples_per_s": [round(v[1], 1) for v in bare],
                "recipe_samples_per_s": [round(v[1], 1) for v in recipe],
                "bare_wall_samples_per_s": [round(v[0], 1) for v in bare],
                "recipe_wall_samples_per_s": [round(v[0], 1) for v in recipe],
                "ratio": round(ratio, 4),
                "wall_ratio": round(wall, 4),
                "best_of_ratio": round(best_ratio, 4),
                "goal": 0.97,
            }
        )
    )


if __name__ == "__main__":
    main()
