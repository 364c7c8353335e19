"""The child's main: the warm training process behind ``WarmWorker`` (multiprocessing "spawn").

It imports torch, torchvision and the PyTorch recipe once, says "ready", then runs one job
at a time, each in a fresh temp workdir. A control thread reads the parent's commands so a
cancel reaches the running job's stop flag between two steps. While a job runs, the child's
stdout and stderr write to the attempt's log file the parent named (``joblogs``). The messages
both ways are in ``protocol``.
"""

from __future__ import annotations

import os
import queue
import shutil
import tempfile
import threading
import time
from multiprocessing.connection import Connection
from pathlib import Path
from typing import Any

import structlog

from sparktrainer.contracts.events import JobStarted, JobValidated
from sparktrainer.errors import JobPreemptedError
from sparktrainer.settings import Settings
from sparktrainer.training.job.stopping import StopFlag
from sparktrainer.training.worker.budget import apply_limits, budget_note, capacity
from sparktrainer.training.worker.joblogs import captured
from sparktrainer.training.worker.protocol import failure_fields, outcome_fields, preempted_fields
from sparktrainer.training.worker.stacks import dump_stacks_on_signal

log = structlog.get_logger(__name__)


def child_main(settings: Settings, commands: Connection, events: Connection) -> None:
    """Entry point of the child process."""
    from sparktrainer.logging import configure

    configure(settings.log_level)
    dump_stacks_on_signal()  # the hang watchdog's stacks, written to the attempt's log
    send_lock = threading.Lock()

    def send(message: tuple[Any, ...]) -> None:
        with send_lock:
            events.send(message)

    started = time.monotonic()
    warm_imports()
    apply_limits(settings)
    ready = {"pid": os.getpid(), "import_s": time.monotonic() - started, "gpus": visible_gpus()}
    send(("ready", {**ready, "capacity": capacity(settings)}))
    jobs: queue.Queue[tuple[int, str, int, StopFlag, str] | None] = queue.Queue()
    threading.Thread(
        target=_control, args=(commands, jobs, send), name="worker-control", daemon=True
    ).start()
    runner = ChildJobRunner(settings, send)
    while (item := jobs.get()) is not None:
        seq, job_json, attempt, stop, log_path = item
        with captured(Path(log_path)):
            fields = runner.run(seq, job_json, attempt, stop)
        send(("outcome", seq, fields))


def warm_imports() -> None:
    """Everything a PyTorch job needs, imported before the first job arrives."""
    import sklearn.datasets  # noqa: F401  (the digits data set)
    import torch
    import torchvision  # noqa: F401

    import sparktrainer.training.pytorch.recipe  # noqa: F401

    try:  # the TensorBoard writer (optional: without it a job writes no event files)
        import torch.utils.tensorboard
    except ImportError:
        pass

    torch.nn.functional.cross_entropy(torch.zeros(2, 2, requires_grad=True), torch.zeros(2).long())


def visible_gpus() -> list[tuple[str, int]]:
    """(name, memory bytes) of each CUDA device this process sees (what the trainer serves)."""
    import torch

    if not torch.cuda.is_available():
        return []
    props = [torch.cuda.get_device_properties(i) for i in range(torch.cuda.device_count())]
    return [(p.name, int(p.total_memory)) for p in props]


def _control(commands: Connection, jobs: queue.Queue[Any], send: Any) -> None:
    """Read commands: accept and queue runs, flag cancels, stop; exit when the parent is gone."""
    current: tuple[int, StopFlag] | None = None
    while True:
        try:
            command = commands.recv()
        except (EOFError, OSError):
            os._exit(1)  # the parent died: nobody is left to report to
        if command[0] == "run":
            _, seq, job_json, attempt, log_path = command
            current = (seq, StopFlag())
            jobs.put((seq, job_json, attempt, current[1], log_path))
            send(("accepted", seq))
        elif command[0] == "cancel" and current is not None and current[0] == command[1]:
            kind = command[3] if len(command) > 3 else "cancel"  # or "timeout"
            current[1].set(kind, command[2])
        elif command[0] == "stop":
            jobs.put(None)
            return


class ChildJobRunner:
    """Runs one job in a fresh temp workdir and turns its end into outcome fields."""

    def __init__(self, settings: Settings, send: Any) -> None:
        self.settings, self.send = settings, send
        self._store: Any = None

    def store(self) -> Any:
        """The object store, built on first use (a bad setting fails the job, not the worker)."""
        if self._store is None:
            from sparktrainer.storage.s3 import ObjectStore

            self._store = ObjectStore.from_settings(self.settings)
        return self._store

    def run(self, seq: int, job_json: str, attempt: int, stop: StopFlag) -> dict[str, Any]:
        """Run the job; never raises."""
        started = time.monotonic()
        seen: dict[str, Any] = {"resumed_from_epoch": None}

        def emit(event: Any) -> None:
            if isinstance(event, JobStarted):
                seen["resumed_from_epoch"] = event.resumed_from_epoch
            self.send(("event", seq, event.ce_type, event.model_dump_json()))

        try:
            job = JobValidated.model_validate_json(job_json)
            fields = self._run_job(job, attempt, stop, emit, seq)
        except BaseException as e:  # every failure becomes an outcome
            fields = failure_fields(e, budget_note(self.settings))
            log.warning("job_failed", seq=seq, reason=fields["reason"], exc_info=True)
        finally:
            _release_memory()
        return {**fields, **seen, "duration_s": time.monotonic() - started}

    def _run_job(
        self, job: JobValidated, attempt: int, stop: StopFlag, emit: Any, seq: int
    ) -> dict[str, Any]:
        from sparktrainer.storage.fencing import AttemptFence
        from sparktrainer.training.job.context import JobContext
        from sparktrainer.training.recipes import run_recipe_job

        workdir = Path(tempfile.mkdtemp(prefix=f"sparktrainer-{job.job_id}-"))
        ctx: JobContext | None = None
        try:
            ctx = JobContext(
                job=job,
                # Every write of the attempt is fenced: refused once a later start is recorded.
                store=AttemptFence(self.store(), job.job_id, attempt).guarded(),
                settings=self.settings,
                workdir=workdir,
                emit=emit,
                attempt=attempt,
                stop=stop,
                send_beat=lambda step: self.send(("beat", seq, step)),
            )
            return outcome_fields(run_recipe_job(ctx))
        except JobPreemptedError as e:
            return preempted_fields(e, uploaded=ctx is not None and _uploaded(ctx, e))
        finally:
            if ctx is not None:
                ctx.scalars.close()  # its writer thread must not outlive the job
            shutil.rmtree(workdir, ignore_errors=True)


def _uploaded(ctx: Any, stopped: JobPreemptedError) -> bool:
    """Wait for the checkpoint taken at the stop to land; False when there is none or it failed
    (the next owner then resumes from the last periodic checkpoint)."""
    if stopped.step is None:
        return False
    try:
        ctx.checkpoints.wait()  # the recipe's cleanup has usually waited (and logged a failure)
    except Exception as e:
        log.warning("preempt_checkpoint_failed", step=stopped.step, error=str(e)[:300])
    return bool(ctx.checkpoints.uploaded_step == stopped.step)


def _release_memory() -> None:
    import gc

    import torch

    gc.collect()
    if torch.cuda.is_available():
        torch.cuda.empty_cache()
