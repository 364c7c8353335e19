"""The Hugging Face recipe: train or fine-tune a transformers model on text, LoRA optional.

``setup`` brings the base model to a local folder (hub cache, local path, or a registered
model downloaded from S3, its unmerged LoRA adapters folded in), checks LoRA targets, loads
text data, picks up the job's last checkpoint and announces JobStarted; ``train`` runs
the one ``TrainingLoop`` here or on DDP ranks, as the PyTorch recipe does; ``save``
writes model.safetensors, config.json, tokenizer files and adapters/ and publishes them
(metadata.json last); ``cleanup`` drops temp files.

``type: train`` starts from the source's config and tokenizer with fresh weights;
``type: finetune`` starts from its weights.
"""

from __future__ import annotations

import shutil
from pathlib import Path
from typing import Any

from sparktrainer.contracts.access import Access
from sparktrainer.contracts.caps import check_on_trainer
from sparktrainer.contracts.events import ModelRegistered
from sparktrainer.contracts.hf_modules import check_lora_targets, model_type_of
from sparktrainer.contracts.jobspec import HuggingFaceConfig
from sparktrainer.contracts.kinds import kind_of
from sparktrainer.errors import InvalidJobError, TrainingError
from sparktrainer.training import recipe_steps
from sparktrainer.training.distributed import plan_launch
from sparktrainer.training.hf.data import load_text_data
from sparktrainer.training.hf.lora import (
    fold_adapters,
    is_peft,
    merge_parent_adapters,
    save_adapters,
)
from sparktrainer.training.hf.models import (
    ADAPTERS_DIR,
    ModelSource,
    read_config,
    resolve_source,
)
from sparktrainer.training.hf.text_step import HFPlan, TextStep, build_model, load_model_state
from sparktrainer.training.job.context import JobContext
from sparktrainer.training.job.environment import environment_snapshot
from sparktrainer.training.loop.plan import TrainResult
from sparktrainer.training.loop.training_loop import TrainingLoop
from sparktrainer.training.sources import DataObjects
from sparktrainer.training.worker.budget import device_capacity

SINGLE_FILE_SHARD = "10000GB"  # one model.safetensors, never shards


def train_huggingface(ctx: JobContext) -> ModelRegistered:
    """Train or fine-tune the job's Hugging Face model and register it."""
    return recipe_steps.run_recipe(HuggingFaceRecipe(ctx))


class HuggingFaceRecipe:
    """One job: setup, train, save, cleanup."""

    def __init__(self, ctx: JobContext) -> None:
        config = ctx.config
        if not isinstance(config, HuggingFaceConfig):
            raise TrainingError(f"the Hugging Face recipe got a {ctx.job.config_kind} job")
        self.ctx, self.config = ctx, config
        self.launch = plan_launch(config.distributed, ctx.settings)
        self.plan: HFPlan | None = None
        self.loop: TrainingLoop | None = None
        self.temp: list[Path] = []
        self.objects: DataObjects | None = None

    def setup(self) -> None:
        """Base model folder, data, resume state, the model itself; then JobStarted."""
        ctx, config = self.ctx, self.config
        ctx.check_stop()
        if config.task_type == "classification" and config.num_classes < 2:
            raise TrainingError("classification needs num_classes >= 2")
        source = self._source()
        ctx.check_stop()  # between the steps of setup too: a download may have taken long
        objects = self.objects = DataObjects.for_job(ctx.store, ctx.settings)
        data = load_text_data(config.data, config.task_type, config.num_classes, objects)
        ctx.check_stop()
        resume = recipe_steps.load_resume(ctx)
        self.plan = HFPlan(
            options=config,
            job_type=ctx.job.type,
            source=source,
            data=data,
            **recipe_steps.loop_fields(ctx, resume),
        )
        # A bad model or LoRA target fails here, before JobStarted (as validation would).
        if self.launch is None:
            self.loop = recipe_steps.local_loop(self.plan, ctx)
        else:  # the ranks build the model; check what can be checked without it
            self._check_lora_targets(source.directory)
        recipe_steps.announce(ctx, self.launch, resume)

    def _source(self) -> ModelSource:
        """The base model as a local folder; a LoRA parent comes with its adapters merged."""
        ctx = self.ctx
        source = resolve_source(
            self.config,
            ctx.job.type,
            ctx.store,
            ctx.workdir,
            access=Access.from_settings(ctx.settings),
            admit=self._admit,
        )
        if source.parent_id is not None:
            self.temp.append(source.directory)
            source = merge_parent_adapters(source, self.ctx.workdir)
            self.temp.append(source.directory)
        return source

    def _admit(self, folder: Path) -> None:
        """The job estimated from its model's config.json, before any weights: the caps, this
        trainer's devices and memory budget (the validator cannot estimate a hub model)."""
        ctx = self.ctx
        problems = check_on_trainer(
            kind_of(ctx.job.config_kind),
            self.config,
            read_config(folder) or None,
            ctx.settings.limits,
            device_capacity(ctx.settings),
        )
        if problems:
            raise InvalidJobError(problems)
        ctx.check_stop()

    def _check_lora_targets(self, folder: Path) -> None:
        if self.config.lora.enabled:
            model_type = model_type_of(read_config(folder))
            errors, _ = check_lora_targets(model_type, None, self.config.lora.target_modules)
            if errors:
                raise TrainingError("; ".join(errors))

    def train(self) -> TrainResult:
        """Run the loop here, or on DDP ranks when the job asks for it."""
        assert self.plan is not None, "setup() first"
        return recipe_steps.run_loop(self.plan, self.ctx, self.launch, self.loop)

    # -- artifacts ---------------------------------------------------------------------

    def _trained_model(self, result: TrainResult) -> tuple[Any, Any]:
        """The trained model and tokenizer: the loop's own, or rebuilt from a DDP result."""
        if self.loop is not None:
            step = self.loop.batch_step
            assert isinstance(step, TextStep)
            return self.loop.module, step.tokenizer
        assert self.plan is not None
        model, tokenizer = build_model(self.plan)
        load_model_state(model, result.model_state, "the DDP result")
        return model, tokenizer

    def save(self, result: TrainResult) -> ModelRegistered:
        """Write the artifacts and publish them; metadata.json goes last."""
        assert self.plan is not None, "setup() first"
        model, tokenizer = self._trained_model(result)
        files, architecture, lora = self._write_files(model, tokenizer)
        source = self.plan.source
        event = self.ctx.publisher.publish(
            files,
            architecture=architecture,
            metrics={**result.metrics, "steps": float(result.step)},
            task=self.config.task_type,
            base_model_id=source.parent_id,
            lineage=source.lineage,
            data=self.objects.identity(self.config.data) if self.objects else None,
            extra_metadata=self._metadata(result, lora),
        )
        self.ctx.checkpoints.clear()
        return event

    def _write_files(
        self, model: Any, tokenizer: Any
    ) -> tuple[dict[str, Path], dict[str, Any], dict[str, Any]]:
        """adapters/ first, then the (merged or base) model and tokenizer: (files, arch, lora)."""
        out = self.ctx.workdir / "model"
        shutil.rmtree(out, ignore_errors=True)
        trainable = sum(p.numel() for p in model.parameters() if p.requires_grad)
        files: dict[str, Path] = {}
        lora: dict[str, Any] = {"enabled": False}
        if is_peft(model):
            lora = lora_metadata(model, self.config)
            files.update(save_adapters(model, out / ADAPTERS_DIR))
            model = fold_adapters(model, self.config.lora.merge)
        architecture = summarize(model, self.config, trainable)
        model.save_pretrained(out, max_shard_size=SINGLE_FILE_SHARD)
        tokenizer.save_pretrained(out)
        files.update({p.name: p for p in sorted(out.iterdir()) if p.is_file()})
        if "model.safetensors" not in files:
            raise TrainingError(f"transformers wrote no model.safetensors (only {sorted(files)})")
        return files, architecture, lora

    def _metadata(self, result: TrainResult, lora: dict[str, Any]) -> dict[str, Any]:
        """What metadata.json says beyond the registration event."""
        assert self.plan is not None
        config = self.config
        return {
            "base_model": self.plan.source.name,
            "model_source": config.model_source,
            "init": "pretrained" if self.ctx.job.type == "finetune" else "random",
            "task_type": config.task_type,
            "lora": lora,
            "precision": result.precision,
            "precision_requested": config.precision,
            "max_length": config.max_length,
            "label_names": self.plan.data.label_names,
            "history": result.history,
            "warnings": result.warnings,
            "env": environment_snapshot(),
        }

    def cleanup(self) -> None:
        """Wait for the checkpoint upload in flight and drop downloaded model folders."""
        self.plan = self.loop = None
        for path in self.temp:
            shutil.rmtree(path, ignore_errors=True)
        shutil.rmtree(self.ctx.workdir / "model", ignore_errors=True)
        recipe_steps.finish_uploads(self.ctx)


def summarize(model: Any, config: HuggingFaceConfig, trainable: int) -> dict[str, Any]:
    """The architecture summary registered with the model (``model`` without adapters)."""
    hf = model.config
    return {
        "model_type": hf.model_type,
        "class": type(model).__name__,
        "num_parameters": sum(p.numel() for p in model.parameters()),
        "trainable_parameters": trainable,
        "num_labels": config.num_classes if config.task_type == "classification" else None,
        "vocab_size": getattr(hf, "vocab_size", None),
        "hidden_size": getattr(hf, "hidden_size", None),
        "num_hidden_layers": getattr(hf, "num_hidden_layers", None),
        "max_length": config.max_length,
    }


def lora_metadata(model: Any, config: HuggingFaceConfig) -> dict[str, Any]:
    """The LoRA settings as trained (targets resolved), for metadata.json."""
    peft_config = model.peft_config["default"]
    return {
        **config.lora.model_dump(),
        "target_modules": sorted(peft_config.target_modules),
        "modules_to_save": sorted(peft_config.modules_to_save or []),
        "adapters": ADAPTERS_DIR + "/",
    }
