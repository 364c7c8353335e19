"""The PyTorch recipe: MLP, custom ResNet, torchvision, and fine-tunes of registered models.

``setup`` resolves the starting model (fresh, pretrained or a registered parent), loads
data shaped for it, picks up the job's last checkpoint and announces JobStarted; ``train``
runs the loop in this process or on DDP ranks; ``save`` writes model.pth, best_model.pth,
config.json and env.json and publishes them (metadata.json last); ``cleanup`` waits for
the checkpoint upload in flight. Errors keep their type so the worker can say whether a retry helps.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import torch

from sparktrainer.contracts.events import ModelRegistered
from sparktrainer.training import recipe_steps
from sparktrainer.training.distributed import plan_launch
from sparktrainer.training.job.context import JobContext
from sparktrainer.training.job.environment import environment_snapshot
from sparktrainer.training.loop.device import pick_device, seed_everything
from sparktrainer.training.loop.plan import TrainResult
from sparktrainer.training.pytorch.data import load_data
from sparktrainer.training.pytorch.model_io import ResolvedModel, resolve_model, write_model_file
from sparktrainer.training.pytorch.tensor_step import TrainPlan
from sparktrainer.training.sources import DataObjects


def train_pytorch(ctx: JobContext) -> ModelRegistered:
    """Train or fine-tune the job's PyTorch model and register it."""
    return recipe_steps.run_recipe(PyTorchRecipe(ctx))


class PyTorchRecipe:
    """One job: setup, train, save, cleanup."""

    def __init__(self, ctx: JobContext) -> None:
        self.ctx = ctx
        self.config = ctx.config
        self.launch = plan_launch(self.config.distributed, ctx.settings)
        self.resolved: ResolvedModel | None = None
        self.plan: TrainPlan | None = None
        self.objects: DataObjects | None = None

    def setup(self) -> None:
        """Model, data, resume state; then JobStarted."""
        ctx, config = self.ctx, self.config
        ctx.check_stop()
        seed_everything(config.seed)  # the model's initial weights are part of the run
        weights_dir = ctx.settings.pretrained_weights_dir
        resolved = self.resolved = resolve_model(config, ctx.store, ctx.workdir, weights_dir)
        ctx.check_stop()  # between the steps of setup too: a download may have taken long
        arch, params = resolved.spec.arch, resolved.spec.params
        objects = self.objects = DataObjects.for_job(ctx.store, ctx.settings)
        data = load_data(config.data, arch.input_shape(params), arch.num_classes(params), objects)
        ctx.check_stop()
        resume = recipe_steps.load_resume(ctx)
        self.plan = TrainPlan(
            options=config,
            model=resolved.model,
            data=data,
            trainable=[n for n, p in resolved.model.named_parameters() if p.requires_grad],
            **recipe_steps.loop_fields(ctx, resume),
        )
        recipe_steps.announce(ctx, self.launch, resume)

    def train(self) -> TrainResult:
        """Run the loop here, or on DDP ranks when the job asks for it."""
        assert self.plan is not None, "setup() first"
        if self.launch is None and pick_device().type == "cuda":
            torch.backends.cudnn.benchmark = True
        return recipe_steps.run_loop(self.plan, self.ctx, self.launch)

    def save(self, result: TrainResult) -> ModelRegistered:
        """Write the artifacts and publish them; metadata.json goes last."""
        assert self.resolved is not None, "setup() first"
        ctx, resolved = self.ctx, self.resolved
        config_json = resolved.spec.config_json()
        files = self._write_files(result, config_json)
        event = ctx.publisher.publish(
            files,
            architecture=config_json,
            metrics=result.metrics,
            base_model_id=resolved.base_model_id,
            lineage=resolved.lineage,
            data=self.objects.identity(self.config.data) if self.objects else None,
            extra_metadata={
                "history": result.history,
                "best_epoch": result.best_epoch,
                "precision": result.precision,
                "warnings": result.warnings,
                "class_names": self.plan.data.class_names if self.plan else None,
                **resolved.notes,
            },
        )
        ctx.checkpoints.clear()
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
        recipe_steps.finish_uploads(self.ctx)
