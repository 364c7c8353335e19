"""The recipe protocol, and the steps every recipe takes the same way around its own model.

A recipe is ``setup / train / save / cleanup``; ``run_recipe`` runs those four in order. The
shared steps: pick up the job's last checkpoint, fill the plan's loop settings, announce
JobStarted, run the one ``TrainingLoop`` here or on DDP ranks, and wait for the checkpoint
upload in flight.
"""

from __future__ import annotations

import os
import socket
from pathlib import Path
from typing import Any, Protocol

import structlog
import torch

from sparktrainer.contracts.events import JobStarted, ModelRegistered
from sparktrainer.training.checkpoint import ResumeState
from sparktrainer.training.distributed import Launch, run_distributed
from sparktrainer.training.job.context import JobContext
from sparktrainer.training.loop.device import pick_device
from sparktrainer.training.loop.plan import Plan, Rank, TrainResult
from sparktrainer.training.loop.training_loop import TrainingLoop

log = structlog.get_logger(__name__)


class Recipe(Protocol):
    """One job's recipe: setup, train, save, cleanup."""

    def setup(self) -> None: ...
    def train(self) -> TrainResult: ...
    def save(self, result: TrainResult) -> ModelRegistered: ...
    def cleanup(self) -> None: ...


def run_recipe(recipe: Recipe) -> ModelRegistered:
    """Set up, train and save; clean up whatever happens."""
    try:
        recipe.setup()
        return recipe.save(recipe.train())
    finally:
        recipe.cleanup()


class ContextHooks:
    """The loop's hooks when it runs in the job's own process."""

    def __init__(self, ctx: JobContext) -> None:
        self.ctx = ctx

    def check_stop(self) -> None:
        """Raise JobCancelledError/JobTimeout when asked to stop."""
        self.ctx.check_stop()

    def beat(self, step: int) -> None:
        """Tell the hang watchdog a batch came."""
        self.ctx.heartbeat.beat(step)

    def progress(self, **fields: Any) -> None:
        """Emit JobProgress."""
        self.ctx.progress(**fields)

    def checkpoint(self, path: Path, epoch: int, step: int) -> None:
        """Upload the checkpoint in the background."""
        self.ctx.checkpoints.save(path, epoch, step)


def load_resume(ctx: JobContext) -> ResumeState | None:
    """The job's last checkpoint (from an earlier attempt), or None."""
    path = ctx.checkpoints.load(ctx.workdir / "resume-from.pt")
    if path is None:
        return None
    state = ResumeState.load(path)
    path.unlink(missing_ok=True)
    ctx.checkpoints.load_logs(ctx.scalars.folder)  # the run's TensorBoard files go on
    ctx.scalars.resume_at(state.step)
    return state


def loop_fields(ctx: JobContext, resume: ResumeState | None) -> dict[str, Any]:
    """The plan fields every recipe fills the same way: workdir, resume, reporting cadence."""
    return {
        "workdir": ctx.workdir,
        "resume": resume,
        "progress_every_s": ctx.settings.progress_every_s,
        "checkpoint_every_steps": ctx.config.checkpoint_every_steps
        or ctx.settings.checkpoint_every_steps,
    }


def announce(ctx: JobContext, launch: Launch | None, resume: ResumeState | None) -> None:
    """Emit JobStarted: the device it trains on, and the epoch it resumes from."""
    ctx.emit(
        JobStarted(
            job_id=ctx.job_id,
            attempt=ctx.attempt,
            name=ctx.job.name,
            framework=ctx.job.framework,
            config_kind=ctx.job.config_kind,
            device=device_name(launch),
            worker=f"{socket.gethostname()}/{os.getpid()}",
            resumed_from_epoch=resume.epoch if resume else None,
            resumed_from_step=resume.step if resume else None,
            total_epochs=ctx.config.epochs,
            skipped_checkpoints=list(ctx.checkpoints.skipped),
        )
    )


def device_name(launch: Launch | None) -> str:
    """E.g. ``cpu``, ``cuda:0 (NVIDIA H100 80GB HBM3)`` or ``2x cpu (DDP, gloo)``."""
    if launch is not None:
        return launch.describe()
    device = pick_device()
    if device.type == "cuda":
        return f"{device} ({torch.cuda.get_device_name(device)})"
    return str(device)


def local_loop(plan: Plan, ctx: JobContext) -> TrainingLoop:
    """The loop in this process, on its best device, reporting straight to the job."""
    return TrainingLoop(plan, ContextHooks(ctx), Rank(device=pick_device()))


def run_loop(
    plan: Plan, ctx: JobContext, launch: Launch | None, loop: TrainingLoop | None = None
) -> TrainResult:
    """Run ``plan`` on DDP ranks when ``launch`` asks, else here (on ``loop`` if built); then
    tell the hang watchdog the loop is done."""
    if launch is not None:
        result = run_distributed(plan, ctx, launch)
    else:
        result = (loop or local_loop(plan, ctx)).fit()
    ctx.heartbeat.ended()
    return result


def finish_uploads(ctx: JobContext) -> None:
    """Wait for the checkpoint upload in flight; a failed one is logged, not raised."""
    try:
        ctx.checkpoints.wait()
    except Exception as e:  # the job's own outcome matters more than a late upload
        log.warning("checkpoint_upload_failed", job_id=ctx.job_id, error=str(e)[:300])
