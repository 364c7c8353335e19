"""Publishing a job's final model: every file under ``models/{id}/``, ``metadata.json`` last.

The registry and fine-tunes treat a model as registered once its metadata.json exists, so
that file goes up after every other one. Uploading is idempotent: a resumed job overwrites
the same keys with the same content.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path
from typing import Any

from sparktrainer.contracts.data_identity import DataIdentity
from sparktrainer.contracts.events import Artifact, ModelRegistered
from sparktrainer.storage.layout import LOGS_DIR, METADATA, model_key, model_prefix
from sparktrainer.storage.s3 import ObjectStore, sha256_file
from sparktrainer.training.job.scalars import ScalarLog
from sparktrainer.training.job.spec import JobSpec


class ModelPublisher:
    """Uploads one job's model files once the checkpoint upload in flight is done."""

    def __init__(
        self,
        spec: JobSpec,
        store: ObjectStore,
        workdir: Path,
        *,
        check_stop: Callable[[], None],
        wait_uploads: Callable[[], None],
        logs: ScalarLog | None = None,
    ) -> None:
        self.spec, self.store, self.workdir = spec, store, workdir
        self.check_stop, self.wait_uploads = check_stop, wait_uploads
        self.logs = logs

    def publish(
        self,
        files: dict[str, Path],
        *,
        architecture: dict[str, Any],
        metrics: dict[str, float],
        task: str = "classification",
        base_model_id: str | None = None,
        lineage: list[str] | None = None,
        data: DataIdentity | None = None,
        extra_metadata: dict[str, Any] | None = None,
    ) -> ModelRegistered:
        """Upload every file, then ``metadata.json`` last, and return the registration event.

        ``files`` maps a name relative to ``models/{id}/`` to a local path; the job's
        TensorBoard files are added under ``logs/``; ``data`` is what the job trained on.
        """
        self.wait_uploads()
        if self.logs is not None:
            files = {**files, **{LOGS_DIR + n: p for n, p in self.logs.close().items()}}
        job = self.spec.job
        event = ModelRegistered(
            model_id=job.job_id,
            job_id=job.job_id,
            name=job.name,
            framework=job.framework,
            task=task,
            architecture=architecture,
            artifacts=self._upload(files),
            storage_prefix=model_prefix(job.job_id),
            metrics=metrics,
            base_model_id=base_model_id,
            lineage=lineage or [],
            data=data,
            tags=job.tags,
            license=job.license,
            domain=job.domain,
            description=job.description,
            register_as=job.register_as,
            tenant=job.tenant,  # the job's owner owns its model (contracts/ownership.py)
        )
        self._upload_metadata(event, extra_metadata or {})
        return event

    def _upload(self, files: dict[str, Path]) -> list[Artifact]:
        """Every file under ``models/{id}/``, in name order; a stop request ends it between two."""
        artifacts = []
        for name, path in sorted(files.items()):
            self.check_stop()
            self.store.put_file(model_key(self.spec.job_id, name), path)
            artifacts.append(
                Artifact(path=name, size_bytes=path.stat().st_size, sha256=sha256_file(path))
            )
        return artifacts

    def _upload_metadata(self, event: ModelRegistered, extra: dict[str, Any]) -> None:
        """``metadata.json``: the registration, the job's config, and what the recipe adds."""
        job = self.spec.job
        metadata = {
            **extra,
            **json.loads(event.model_dump_json()),
            "job_type": job.type,
            "config_kind": job.config_kind,
            "job_config": job.config.model_dump(mode="json"),
        }
        meta_path = self.workdir / METADATA
        meta_path.write_text(json.dumps(metadata, indent=2, default=str))
        self.store.put_file(model_key(job.job_id, METADATA), meta_path)
