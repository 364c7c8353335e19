"""Data-parallel training: one process per rank (torch.multiprocessing, spawn).

The calling process is the launcher: it keeps the job's context (S3, events, stop flag),
starts ``world`` rank processes and relays rank 0's progress and checkpoint files to the
context. Ranks rendezvous through a file store in the job's workdir (no port to pick),
use NCCL on GPUs and gloo on CPUs, and vote on stopping every step over a gloo group.
"""

from __future__ import annotations

import copy
import ctypes
import os
import queue
import signal
import time
import uuid
from dataclasses import dataclass, fields
from datetime import timedelta
from pathlib import Path
from typing import Any

import torch
import torch.distributed as dist
import torch.multiprocessing as tmp

from sparktrainer import errors
from sparktrainer.contracts.jobspec import DistributedSpec
from sparktrainer.errors import InvalidJobError, SparkTrainerError, TrainingError
from sparktrainer.settings import Settings
from sparktrainer.training.checkpoint import ResumeState, safe_load
from sparktrainer.training.job.context import JobContext
from sparktrainer.training.job.heartbeat import Heartbeat
from sparktrainer.training.loop.plan import NoHooks, Plan, Rank, TrainResult
from sparktrainer.training.loop.stop_vote import StopRequested
from sparktrainer.training.loop.training_loop import TrainingLoop
from sparktrainer.training.worker.stacks import dump_stacks_on_signal

RANK_EXIT_GRACE_S = 30.0


@dataclass(frozen=True)
class Launch:
    """How many ranks, over which backend, on which kind of device."""

    world: int
    backend: str
    device_type: str
    cuda_memory_fraction: float = 1.0  # of each GPU, per rank (the worker's budget)

    def describe(self) -> str:
        """E.g. ``2x cpu (DDP, gloo)``, for JobStarted.device."""
        return f"{self.world}x {self.device_type} (DDP, {self.backend})"


def plan_launch(spec: DistributedSpec, settings: Settings) -> Launch | None:
    """The launch a job's ``distributed`` block asks for; None when it is off.

    Never more ranks than GPUs, nor than ``cpu_max_world_size`` on a trainer without GPUs.
    """
    if not spec.enabled:
        return None
    gpus = torch.cuda.device_count() if torch.cuda.is_available() else 0
    backend = spec.backend if spec.backend != "auto" else ("nccl" if gpus else "gloo")
    if backend == "nccl" and not gpus:
        raise InvalidJobError(
            ["distributed backend nccl needs CUDA GPUs: use backend auto or gloo"]
        )
    world = spec.world_size or gpus or 2
    if gpus and world > gpus:
        raise InvalidJobError(
            [f"distributed.world_size {world} exceeds the {gpus} local GPUs: "
             "leave world_size out to use every GPU"]
        )  # fmt: skip
    if not gpus and world > settings.cpu_max_world_size:
        raise InvalidJobError(
            [f"distributed.world_size {world} is more than the {settings.cpu_max_world_size} "
             "processes a trainer without GPUs runs (SPARKTRAINER_CPU_MAX_WORLD_SIZE)"]
        )  # fmt: skip
    fraction = settings.worker_cuda_memory_fraction
    return Launch(world, backend, "cuda" if gpus else "cpu", fraction)


def run_distributed(plan: Plan, ctx: JobContext, launch: Launch) -> TrainResult:
    """Train ``plan`` on ``launch.world`` ranks (each runs the ``TrainingLoop`` on its share)."""
    mp = tmp.get_context("spawn")
    events = mp.Queue()
    stop = mp.Event()
    store_file = plan.workdir / f"ddp-{uuid.uuid4().hex}"
    procs = [
        mp.Process(
            target=_rank_main,
            name=f"ddp-rank{r}",
            args=(r, launch, str(store_file), plan, events, stop),
        )
        for r in range(launch.world)
    ]
    for p in procs:
        p.start()
    try:
        return _supervise(ctx, procs, events, stop)
    finally:
        stop.set()
        _reap(procs)
        store_file.unlink(missing_ok=True)


def _supervise(ctx: JobContext, procs: list[Any], events: Any, stop: Any) -> TrainResult:
    """Relay rank 0's messages to the context until a result, an error or a dead rank."""
    while True:
        try:
            ctx.check_stop()
        except SparkTrainerError:
            stop.set()
            raise
        try:
            kind, payload = events.get(timeout=0.1)
        except queue.Empty:
            _raise_if_dead(procs)
            continue
        if kind == "beat":
            ctx.heartbeat.beat(payload)
        elif kind == "progress":
            ctx.progress(**payload)
        elif kind == "checkpoint":
            path, epoch, step = payload
            ctx.checkpoints.save(Path(path), epoch, step)
        elif kind == "error":
            raise _rebuild_error(payload)
        elif kind == "result":
            state = safe_load(Path(payload), "DDP result")
            Path(payload).unlink(missing_ok=True)
            return TrainResult(**state)


def _raise_if_dead(procs: list[Any]) -> None:
    for rank, p in enumerate(procs):
        if p.exitcode not in (None, 0):
            raise TrainingError(f"DDP rank {rank} died (exit code {p.exitcode})")
    if all(p.exitcode == 0 for p in procs):
        raise TrainingError("DDP ranks exited without a result")


def _reap(procs: list[Any]) -> None:
    deadline = time.monotonic() + RANK_EXIT_GRACE_S
    for p in procs:
        p.join(max(0.0, deadline - time.monotonic()))
    for p in procs:
        if p.is_alive():
            p.kill()
            p.join(5)


def _rebuild_error(payload: dict[str, Any]) -> SparkTrainerError:
    cls = getattr(errors, payload["type"], None)
    message = payload["message"]
    error: SparkTrainerError
    if (
        isinstance(cls, type)
        and issubclass(cls, SparkTrainerError)
        and (cls is not errors.InvalidJobError)
    ):
        error = cls(message)
    else:
        error = TrainingError(f"{payload['type']}: {message}")
    error.retriable = bool(payload["retriable"])
    return error


class QueueHooks:
    """Rank 0's hooks: messages to the launcher, which owns the job's context."""

    def __init__(self, events: Any, stop: Any) -> None:
        self.events, self.stop = events, stop
        self.heartbeat = Heartbeat(lambda step: self.events.put(("beat", step)))

    def check_stop(self) -> None:
        """Stop when the launcher says so (cancel, time limit, another rank's failure)."""
        if self.stop.is_set():
            raise StopRequested("the launcher asked every rank to stop")

    def beat(self, step: int) -> None:
        """Forward a beat (at most one each ``BEAT_EVERY_S``) for the hang watchdog."""
        self.heartbeat.beat(step)

    def progress(self, **fields: Any) -> None:
        """Forward a progress report."""
        self.events.put(("progress", fields))

    def checkpoint(self, path: Path, epoch: int, step: int) -> None:
        """Hand a written checkpoint file to the launcher for upload."""
        self.events.put(("checkpoint", (str(path), epoch, step)))


def die_with_parent() -> None:
    """Ask Linux to SIGKILL this process when its parent dies (no orphaned trainers)."""
    try:
        libc = ctypes.CDLL("libc.so.6", use_errno=True)
        libc.prctl(1, signal.SIGKILL)  # PR_SET_PDEATHSIG
    except OSError:
        return


def _own_mutable_state(plan: Any) -> None:
    """Give this rank private copies of the plan's modules and resume state.

    Tensors pickled to a spawned process arrive in shared memory that every rank maps: an
    optimizer step on one rank would move the others' weights (or Adam moments) too. The
    data stays shared: it is only read.
    """
    for f in fields(plan):
        value = getattr(plan, f.name)
        if isinstance(value, torch.nn.Module | ResumeState):
            setattr(plan, f.name, copy.deepcopy(value))


def _rank_device(rank: int, launch: Launch) -> torch.device:
    """GPU ``rank`` (made current), or the CPU with its cores shared among the ranks."""
    if launch.device_type == "cuda":
        device = torch.device("cuda", rank)
        torch.cuda.set_device(device)
        torch.cuda.set_per_process_memory_fraction(launch.cuda_memory_fraction, device)
        return device
    torch.set_num_threads(max(1, (os.cpu_count() or 1) // launch.world))
    return torch.device("cpu")


def _rank_main(
    rank: int,
    launch: Launch,
    store_file: str,
    plan: Plan,
    events: Any,
    stop: Any,
) -> None:
    die_with_parent()
    dump_stacks_on_signal()  # a hung rank's stacks land in the attempt's log too
    try:
        device = _rank_device(rank, launch)
        dist.init_process_group(
            launch.backend,
            init_method=f"file://{store_file}",
            rank=rank,
            world_size=launch.world,
            timeout=timedelta(minutes=10),
        )
        control = dist.new_group(backend="gloo")
        _own_mutable_state(plan)
        hooks = QueueHooks(events, stop) if rank == 0 else NoHooks()
        result = TrainingLoop(plan, hooks, Rank(rank, launch.world, device, control)).fit()
        if rank == 0:
            path = plan.workdir / "ddp-result.pt"
            torch.save({f.name: getattr(result, f.name) for f in fields(result)}, path)
            events.put(("result", str(path)))
    except StopRequested:
        pass
    except Exception as e:
        retriable = isinstance(e, SparkTrainerError) and e.retriable
        error = {"type": type(e).__name__, "message": str(e)[:1000], "retriable": retriable}
        events.put(("error", error))
        raise SystemExit(1) from e
    finally:
        if dist.is_initialized():
            dist.destroy_process_group()
