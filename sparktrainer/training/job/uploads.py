"""A job's checkpoint in S3: uploaded in the background, fetched when a retry resumes.

Training does not wait for S3: ``save`` hands the file to one upload thread and returns. The
previous upload is awaited first, so at most one is in flight and they land in order. The
job's TensorBoard files go along (``checkpoints/{id}/logs/``), as they were at the checkpoint.
Each checkpoint upload records the file's sha256 with the object (and in CheckpointSaved); a
resume refuses a checkpoint whose bytes are not the ones recorded. Before a new checkpoint
replaces ``latest.pt`` the old one is copied (server-side, its sha256 with it) to
``previous.pt``: a resume takes the newest one that verifies, logs ``checkpoint_skipped`` for
each it passed over (also in ``JobStarted.skipped_checkpoints``), and refuses only when none
does. An S3 PUT is atomic, so an upload killed halfway leaves ``latest.pt`` as it was.
"""

from __future__ import annotations

import shutil
import time
from collections.abc import Callable
from concurrent.futures import Future, ThreadPoolExecutor
from pathlib import Path

import structlog
from pydantic import BaseModel

from sparktrainer.contracts.events import CheckpointSaved
from sparktrainer.errors import StorageError, UnsafeArtifactError
from sparktrainer.storage.layout import LOGS_DIR, MAX_LOG_FILES, checkpoint_prefix
from sparktrainer.storage.s3 import ObjectStore, sha256_file
from sparktrainer.training.checkpoint import check_sha256
from sparktrainer.training.job.scalars import ScalarLog

CHECKPOINT_NAME = "latest.pt"
PREVIOUS_NAME = "previous.pt"  # the checkpoint before latest.pt: the fallback of a bad one
Emit = Callable[[BaseModel], None]
log = structlog.get_logger(__name__)


class CheckpointUploads:
    """This job's ``checkpoints/{id}/latest.pt``: save, wait, load, clear."""

    def __init__(
        self, store: ObjectStore, job_id: str, attempt: int, emit: Emit, logs: ScalarLog
    ) -> None:
        self.store, self.job_id, self.attempt, self.emit = store, job_id, attempt, emit
        self.logs = logs
        self.key = checkpoint_prefix(job_id) + CHECKPOINT_NAME
        self.previous_key = checkpoint_prefix(job_id) + PREVIOUS_NAME
        self.skipped: list[str] = []  # checkpoints a resume passed over, each with why
        self._uploads = ThreadPoolExecutor(1, thread_name_prefix="ckpt-upload")
        self._pending: Future[None] | None = None
        self.uploaded_step: int | None = None  # the step of the last checkpoint that landed

    def save(self, local: Path, epoch: int, step: int) -> None:
        """Upload a checkpoint file in the background; CheckpointSaved follows its upload."""
        self.wait()
        staged = local.with_suffix(f".upload{step}")
        local.replace(staged)
        logs_dir = local.with_name(f"logs-upload{step}")
        logs = self.logs.snapshot(logs_dir)

        def upload() -> None:
            # The logs first: if the checkpoint then fails to land, a resume from the one before
            # purges what they hold past it; logs older than the checkpoint would leave a gap.
            for name, path in logs.items():
                self.store.put_file(checkpoint_prefix(self.job_id) + LOGS_DIR + name, path)
            shutil.rmtree(logs_dir, ignore_errors=True)
            size, digest = staged.stat().st_size, sha256_file(staged)
            started = time.monotonic()
            self._keep_previous()
            self.store.put_file(self.key, staged, sha256=digest)
            upload_s = time.monotonic() - started
            staged.unlink(missing_ok=True)
            self.uploaded_step = step
            self.emit(
                CheckpointSaved(
                    job_id=self.job_id,
                    attempt=self.attempt,
                    epoch=epoch,
                    step=step,
                    key=self.key,
                    size_bytes=size,
                    upload_s=upload_s,
                    sha256=digest,
                )
            )

        self._pending = self._uploads.submit(upload)

    def _keep_previous(self) -> None:
        """Copy ``latest.pt`` to ``previous.pt`` before it is replaced. A copy that fails (an
        object past S3's 5 GiB copy limit, say) only costs the fallback: logged, upload goes on."""
        try:
            if self.uploaded_step is not None or self.store.exists(self.key):
                self.store.copy(self.key, self.previous_key)
        except StorageError as e:
            log.warning("checkpoint_previous_not_kept", job_id=self.job_id, error=str(e)[:300])

    def wait(self) -> None:
        """Block until the checkpoint upload in flight (if any) is done; re-raise its error."""
        if self._pending is not None:
            pending, self._pending = self._pending, None
            pending.result()

    def load(self, local: Path) -> Path | None:
        """Download this job's newest checkpoint that verifies to ``local``; None when there is
        none. One that does not verify is skipped for the one before (``skipped`` says why);
        when every one there fails, the first refusal is raised."""
        refusals: list[UnsafeArtifactError] = []
        for key in (self.key, self.previous_key):
            if not self.store.exists(key):
                continue
            recorded = self.store.recorded_sha256(key)
            self.store.get_file(key, local)
            try:
                check_sha256(local, recorded, f"checkpoint {key}")
            except UnsafeArtifactError as e:
                refusals.append(e)
                self.skipped.append(f"{key}: {e}"[:300])
                log.warning("checkpoint_skipped", job_id=self.job_id, key=key, why=str(e)[:300])
                continue
            return local
        if refusals:
            raise refusals[0]
        return None

    def load_logs(self, folder: Path) -> int:
        """Download the TensorBoard files the last checkpoint carried; how many there were."""
        prefix = checkpoint_prefix(self.job_id) + LOGS_DIR
        return self.store.get_flat_folder(prefix, folder, MAX_LOG_FILES)

    def clear(self) -> None:
        """Remove this job's checkpoints once its model is registered."""
        self.store.delete_prefix(checkpoint_prefix(self.job_id))
