"""The PyTorch recipe: MLP, custom ResNet, torchvision, and fine-tunes of registered models.

``setup`` resolves the starting model (fresh, pretrained or a registered parent), loads
data shaped for it, picks up the job's last checkpoint and announces JobStarted; ``train``
runs the loop in this process or on DDP ranks; ``save`` writes model.pth, best_model.pth,
config.json and env.json and publishes them (metadata.json last); ``cleanup`` drops temp
files. Errors keep their type so the worker can say whether a retry helps.
"""

from __future__ import annotations

import json
import os
import socket
from pathlib import Path
from typing import Any

import structlog
import torch

from sparktrainer.contracts.events import JobStarted, ModelRegistered
from sparktrainer.training.checkpoint import ResumeState
from sparktrainer.training.context import JobContext, environment_snapshot
from sparktrainer.training.data import load_data
from sparktrainer.training.distributed import plan_launch, run_distributed
from sparktrainer.training.loop import pick_device, seed_everything
from sparktrainer.training.model_io import ResolvedModel, resolve_model, write_model_file
from sparktrainer.training.trainer import Rank, Trainer, TrainPlan, TrainResult

log = structlog.get_logger(__name__)


def run(ctx: JobContext) -> ModelRegistered:
    """Train or fine-tune the job's PyTorch model and register it."""
    recipe = PyTorchRecipe(ctx)
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
        """Raise JobCancelled/JobTimeout when asked to stop."""
        self.ctx.check_stop()

    def progress(self, **fields: Any) -> None:
        """Emit JobProgress."""
        self.ctx.progress(**fields)

    def checkpoint(self, path: Path, epoch: int, step: int) -> None:
        """Upload the checkpoint in the background."""
        self.ctx.save_checkpoint(path, epoch, step)


class PyTorchRecipe:
    """One job: setup, train, save, cleanup."""

    def __init__(self, ctx: JobContext) -> None:
        self.ctx = ctx
        self.config = ctx.config
        self.launch = plan_launch(self.config.distributed)
        self.resolved: ResolvedModel | None = None
        self.plan: TrainPlan | None = None

    def setup(self) -> None:
        """Model, data, resume state; then JobStarted."""
        ctx, config = self.ctx, self.config
        ctx.check_stop()
        seed_everything(config.seed)  # the model's initial weights are part of the run
        resolved = self.resolved = resolve_model(config, ctx.store, ctx.workdir)
        arch, params = resolved.spec.arch, resolved.spec.params
        data = load_data(config.data, arch.input_shape(params), arch.num_classes(params), ctx.store)
        resume = self._load_resume()
        self.plan = TrainPlan(
            options=config,
            model=resolved.model,
            data=data,
            workdir=ctx.workdir,
            trainable=[n for n, p in resolved.model.named_parameters() if p.requires_grad],
            resume=resume,
            progress_every_s=ctx.settings.progress_every_s,
            checkpoint_every_steps=config.checkpoint_every_steps
            or ctx.settings.checkpoint_every_steps,
        )
        ctx.emit(
            JobStarted(
                job_id=ctx.job_id,
                attempt=ctx.attempt,
                name=ctx.job.name,
                framework=ctx.job.framework,
                config_kind=ctx.job.config_kind,
                device=self._device_name(),
                worker=f"{socket.gethostname()}/{os.getpid()}",
                resumed_from_epoch=resume.epoch if resume else None,
                total_epochs=config.epochs,
            )
        )

    def _load_resume(self) -> ResumeState | None:
        path = self.ctx.load_checkpoint(self.ctx.workdir / "resume-from.pt")
        if path is None:
            return None
        state = ResumeState.load(path)
        path.unlink(missing_ok=True)
        return state

    def _device_name(self) -> str:
        if self.launch is not None:
            return self.launch.describe()
        device = pick_device()
        if device.type == "cuda":
            return f"{device} ({torch.cuda.get_device_name(device)})"
        return str(device)

    def train(self) -> TrainResult:
        """Run the loop here, or on DDP ranks when the job asks for it."""
        assert self.plan is not None, "setup() first"
        if self.launch is not None:
            return run_distributed(self.plan, self.ctx, self.launch)
        if pick_device().type == "cuda":
            torch.backends.cudnn.benchmark = True
        return Trainer(self.plan, ContextHooks(self.ctx), Rank(device=pick_device())).fit()

    def save(self, result: TrainResult) -> ModelRegistered:
        """Write the artifacts and publish them; metadata.json goes last."""
        assert self.resolved is not None, "setup() first"
        ctx, resolved = self.ctx, self.resolved
        config_json = resolved.spec.config_json()
        files = self._write_files(result, config_json)
        event = ctx.publish(
            files,
            architecture=config_json,
            metrics=result.metrics,
            base_model_id=resolved.base_model_id,
            lineage=resolved.lineage,
            extra_metadata={
                "history": result.history,
                "best_epoch": result.best_epoch,
                "precision": result.precision,
                "warnings": result.warnings,
                "class_names": self.plan.data.class_names if self.plan else None,
                **resolved.notes,
            },
        )
        ctx.clear_checkpoints()
        return event

    def _write_files(self, result: TrainResult, config_json: dict[str, Any]) -> dict[str, Path]:
        out = self.ctx.workdir / "model"
        out.mkdir(exist_ok=True)
        common = {"config": config_json, "metrics": result.metrics}
        files = {
            "model.pth": write_model_file(
                out / "model.pth",
                result.model_state,
                optimizer_state_dict=result.optimizer_state,
                epoch=result.epochs,
                step=result.step,
                **common,
            ),
            "best_model.pth": write_model_file(
                out / "best_model.pth",
                result.best_model or result.model_state,
                epoch=result.best_epoch or result.epochs,
                **common,
            ),
            "config.json": out / "config.json",
            "env.json": out / "env.json",
        }
        files["config.json"].write_text(json.dumps(config_json, indent=2))
        files["env.json"].write_text(json.dumps(environment_snapshot(), indent=2, default=str))
        return files

    def cleanup(self) -> None:
        """Wait for the checkpoint upload in flight and drop the plan's tensors."""
        self.plan = self.resolved = None
        try:
            self.ctx.wait_uploads()
        except Exception as e:  # the job's own outcome matters more than a late upload
            log.warning("checkpoint_upload_failed", job_id=self.ctx.job_id, error=str(e)[:300])
