"""``JobContext``: what a recipe gets to run one job, composed of the parts in this room.

A recipe is a function ``(ctx: JobContext) -> ModelRegistered`` (``training/recipes.py``).
It reads the job from the context's spec (``ctx.job``, ``ctx.config``), calls
``ctx.check_stop()`` every step and ``ctx.progress(...)`` as it goes, saves and loads its
checkpoint through ``ctx.checkpoints``, and ends with ``ctx.publisher.publish(...)``, which
uploads every file (the TensorBoard files of ``ctx.scalars`` under ``logs/``), ``metadata.json``
last.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from sparktrainer.contracts.events import JobProgress
from sparktrainer.contracts.series import task_of
from sparktrainer.settings import Settings
from sparktrainer.storage.s3 import ObjectStore
from sparktrainer.training.job.heartbeat import Heartbeat, SendBeat
from sparktrainer.training.job.publish import ModelPublisher
from sparktrainer.training.job.scalars import ScalarLog
from sparktrainer.training.job.spec import JobSpec
from sparktrainer.training.job.stopping import StopCheck, StopFlag
from sparktrainer.training.job.uploads import CheckpointUploads, Emit


@dataclass(kw_only=True)
class JobContext(JobSpec):
    """One job's world, inside the training worker: its spec, the store, the way to talk back.

    ``stop`` is the flag the worker sets on a cancel; the time limit starts counting when the
    context is built. ``send_beat`` takes the loop's beats (``heartbeat``) to the hang watchdog
    (None: nobody watches).
    """

    store: ObjectStore
    settings: Settings
    workdir: Path
    emit: Emit
    stop: StopFlag = field(default_factory=StopFlag)
    send_beat: SendBeat | None = None

    def __post_init__(self) -> None:
        self.heartbeat = Heartbeat(self.send_beat)
        limit_s = self.config_max_runtime_s(self.settings.limits.job_runtime_s)
        self.stop_check = StopCheck(self.stop, limit_s)
        self.scalars = ScalarLog(self.workdir / "logs", task_of(self.config))
        # Through ``self.emit`` at call time: a caller may swap ``emit`` after building this.
        self.checkpoints = CheckpointUploads(
            self.store, self.job_id, self.attempt, lambda event: self.emit(event), self.scalars
        )
        self.publisher = ModelPublisher(
            self,
            self.store,
            self.workdir,
            check_stop=self.check_stop,
            wait_uploads=self.checkpoints.wait,
            logs=self.scalars,
        )

    def check_stop(self) -> None:
        """Raise JobCancelledError or JobTimeout when the job was cancelled or ran too long."""
        self.stop_check.check()

    def progress(self, **fields: Any) -> None:
        """Emit a progress event (epoch, step, total_steps, loss, accuracy, lr, samples/s, eta)
        and write its scalars to the job's TensorBoard files."""
        report = JobProgress(job_id=self.job_id, attempt=self.attempt, **fields)
        self.emit(report)
        self.scalars.write(report)
