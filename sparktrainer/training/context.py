"""What a recipe gets to run one job: its spec, the store, and the way to talk back.

A recipe is a plain function ``run(ctx: JobContext) -> ModelRegistered`` (see
``sparktrainer.training.recipes``). It calls ``ctx.check_stop()`` every step, ``ctx.progress``
as it goes, ``ctx.save_checkpoint``/``ctx.load_checkpoint`` at epoch boundaries (and every N
steps), and ends with ``ctx.publish`` which uploads every file, ``metadata.json`` last.
"""

from __future__ import annotations

import json
import platform
import sys
import time
from collections.abc import Callable
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass, field
from importlib import metadata as importlib_metadata
from pathlib import Path
from typing import Any

from pydantic import BaseModel

from sparktrainer.contracts.events import (
    Artifact,
    CheckpointSaved,
    JobProgress,
    JobValidated,
    ModelRegistered,
)
from sparktrainer.contracts.jobspec import CONFIG_KINDS, TrainingOptions
from sparktrainer.errors import JobCancelled, JobTimeout
from sparktrainer.settings import Settings
from sparktrainer.storage.layout import METADATA, checkpoint_prefix, model_key, model_prefix
from sparktrainer.storage.s3 import ObjectStore, sha256_file

CHECKPOINT_NAME = "latest.pt"
Emit = Callable[[BaseModel], None]


@dataclass
class StopFlag:
    """Set from outside (a cancel request or a time limit); read by the recipe every step."""

    reason: str | None = None
    kind: str | None = None  # "cancel" | "timeout"

    def set(self, kind: str, reason: str) -> None:
        """Ask the running job to stop at its next step."""
        self.kind, self.reason = kind, reason


@dataclass
class JobContext:
    """One job's world, inside the training worker."""

    job: JobValidated
    store: ObjectStore
    settings: Settings
    workdir: Path
    emit: Emit
    attempt: int = 1
    stop: StopFlag = field(default_factory=StopFlag)
    started_monotonic: float = field(default_factory=time.monotonic)
    _uploads: ThreadPoolExecutor = field(
        default_factory=lambda: ThreadPoolExecutor(1, thread_name_prefix="ckpt-upload")
    )
    _pending: Future[None] | None = None

    @property
    def job_id(self) -> str:
        """The job's id, which is also the id of the model it will register."""
        return self.job.job_id

    @property
    def config(self) -> TrainingOptions:
        """The job's normalized config as its typed spec."""
        return CONFIG_KINDS[self.job.config_kind].model_validate(self.job.config)

    def check_stop(self) -> None:
        """Raise when the job was cancelled or ran past its time limit."""
        limit = self.config_max_runtime_s()
        if self.stop.kind is None and limit and time.monotonic() - self.started_monotonic > limit:
            self.stop.set("timeout", f"job exceeded its time limit of {limit:g} s")
        if self.stop.kind == "cancel":
            raise JobCancelled(self.stop.reason or "cancel requested")
        if self.stop.kind == "timeout":
            raise JobTimeout(self.stop.reason or "time limit exceeded")

    def config_max_runtime_s(self) -> float:
        """The job's own time limit, capped by the settings' limit."""
        own = self.job.config.get("max_runtime_s")
        cap = self.settings.limits.job_runtime_s
        return min(float(own), cap) if own else cap

    def progress(self, **fields: Any) -> None:
        """Emit a progress event (epoch, step, total_steps, loss, accuracy, lr, samples/s, eta)."""
        self.emit(JobProgress(job_id=self.job_id, attempt=self.attempt, **fields))

    # -- checkpoints ---------------------------------------------------------------------

    def save_checkpoint(self, local: Path, epoch: int, step: int) -> None:
        """Upload a checkpoint file in the background; training does not wait for S3.

        The previous upload is awaited first, so at most one is in flight and the order holds.
        """
        self.wait_uploads()
        key = checkpoint_prefix(self.job_id) + CHECKPOINT_NAME
        staged = local.with_suffix(f".upload{step}")
        local.replace(staged)

        def upload() -> None:
            size = staged.stat().st_size
            self.store.put_file(key, staged)
            staged.unlink(missing_ok=True)
            self.emit(
                CheckpointSaved(
                    job_id=self.job_id,
                    attempt=self.attempt,
                    epoch=epoch,
                    step=step,
                    key=key,
                    size_bytes=size,
                )
            )

        self._pending = self._uploads.submit(upload)

    def wait_uploads(self) -> None:
        """Block until the checkpoint upload in flight (if any) is done; re-raise its error."""
        if self._pending is not None:
            pending, self._pending = self._pending, None
            pending.result()

    def load_checkpoint(self, local: Path) -> Path | None:
        """Download this job's last checkpoint to ``local``; None when there is none."""
        key = checkpoint_prefix(self.job_id) + CHECKPOINT_NAME
        if not self.store.exists(key):
            return None
        self.store.get_file(key, local)
        return local

    def clear_checkpoints(self) -> None:
        """Remove this job's checkpoints once its model is registered."""
        self.store.delete_prefix(checkpoint_prefix(self.job_id))

    # -- the final model -----------------------------------------------------------------

    def publish(
        self,
        files: dict[str, Path],
        *,
        architecture: dict[str, Any],
        metrics: dict[str, float],
        task: str = "classification",
        base_model_id: str | None = None,
        lineage: list[str] | None = None,
        extra_metadata: dict[str, Any] | None = None,
    ) -> ModelRegistered:
        """Upload every file, then ``metadata.json`` last, and return the registration event.

        ``files`` maps a name relative to ``models/{id}/`` to a local path. Uploading is
        idempotent: a resumed job overwrites the same keys with the same content.
        """
        self.wait_uploads()
        artifacts = []
        for name, path in sorted(files.items()):
            self.check_stop()
            self.store.put_file(model_key(self.job_id, name), path)
            artifacts.append(
                Artifact(path=name, size_bytes=path.stat().st_size, sha256=sha256_file(path))
            )
        event = ModelRegistered(
            model_id=self.job_id,
            job_id=self.job_id,
            name=self.job.name,
            framework=self.job.framework,
            task=task,
            architecture=architecture,
            artifacts=artifacts,
            storage_prefix=model_prefix(self.job_id),
            metrics=metrics,
            base_model_id=base_model_id,
            lineage=lineage or [],
            tags=self.job.tags,
            license=self.job.license,
            domain=self.job.domain,
            description=self.job.description,
        )
        metadata = {
            **(extra_metadata or {}),
            **json.loads(event.model_dump_json()),
            "job_type": self.job.type,
            "config_kind": self.job.config_kind,
            "job_config": self.job.config,
        }
        meta_path = self.workdir / METADATA
        meta_path.write_text(json.dumps(metadata, indent=2, default=str))
        self.store.put_file(model_key(self.job_id, METADATA), meta_path)
        return event


def environment_snapshot() -> dict[str, Any]:
    """``env.json``: python, platform, key package versions, torch and CUDA details."""
    packages = {}
    for name in (
        "torch",
        "torchvision",
        "transformers",
        "peft",
        "safetensors",
        "numpy",
        "sparktrainer",
    ):
        try:
            packages[name] = importlib_metadata.version(name)
        except importlib_metadata.PackageNotFoundError:
            continue
    env: dict[str, Any] = {
        "python": sys.version.split()[0],
        "platform": platform.platform(),
        "packages": packages,
    }
    try:
        import torch

        env["torch"] = torch.__version__
        env["cuda_available"] = torch.cuda.is_available()
        env["cuda_version"] = torch.version.cuda
        if torch.cuda.is_available():
            env["cuda_devices"] = [
                torch.cuda.get_device_name(i) for i in range(torch.cuda.device_count())
            ]
    except ImportError:
        pass
    return env
