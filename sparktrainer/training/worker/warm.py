"""``WarmWorker``: the trainer consumer's handle on a warm training process.

The asyncio side never imports torch. ``start()`` spawns a child that imports torch,
torchvision and the PyTorch recipe once; ``run()`` hands it a job and awaits ``on_event`` for each
JobStarted / JobProgress / CheckpointSaved in order, without blocking the event loop; a
crash in training (even SIGKILL or a segfault) becomes a failed ``Outcome`` and a fresh
child for the next job.
"""

from __future__ import annotations

import asyncio
import collections
import itertools
import multiprocessing as mp
import threading
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from multiprocessing.connection import Connection
from pathlib import Path
from typing import Any

import structlog
from pydantic import BaseModel

from sparktrainer.contracts.caps import Capacity
from sparktrainer.contracts.events import EVENT_TYPES, JobValidated
from sparktrainer.contracts.failures import FailureReason
from sparktrainer.errors import SparkTrainerError
from sparktrainer.settings import Settings
from sparktrainer.training.job.spec import time_limit_s
from sparktrainer.training.worker import endings
from sparktrainer.training.worker.budget import MemoryWatch, memory_budget_bytes
from sparktrainer.training.worker.causes import OomKills
from sparktrainer.training.worker.child import child_main
from sparktrainer.training.worker.hang import Hang, HangRule, ProgressWatch
from sparktrainer.training.worker.joblogs import JobLogs, note
from sparktrainer.training.worker.protocol import Outcome, pump_events
from sparktrainer.training.worker.stacks import ask_for_stacks

log = structlog.get_logger(__name__)
OnEvent = Callable[[BaseModel], Awaitable[None]]
GUARD_INTERVAL_S = 0.2
# faulthandler writes the stacks from its signal handler at once: this only covers a loaded
# machine's scheduling between the signal and the kill.
STACKS_WAIT_S = 0.5


class WorkerError(SparkTrainerError):
    """The training process could not start or died; a retry on a fresh one may work."""

    retriable = True


@dataclass
class _Child:
    process: Any
    commands: Connection
    inbox: asyncio.Queue[tuple[Any, ...]]


@dataclass
class _Watched:
    seq: int
    progress: ProgressWatch
    log_path: Path


@dataclass
class _StopAsked:
    kind: str  # "cancel" | "timeout" | "preempt"
    reason: str
    at: float  # loop time


class WarmWorker:
    """One warm training process; one job at a time.

    While a job runs a guard watches it: past the memory budget the worker (and its DDP ranks)
    is killed and the job fails naming the budget; a job asked to stop (a cancel, its time
    limit) that has not stopped ``worker_stop_grace_s`` later (stuck in a download, say) is
    killed and ends cancelled or timed out; a job whose loop stopped beating (``hang``) has its
    stacks written to its log, is killed and fails ``hung`` (retriable). Either way a fresh
    worker takes the next job.
    """

    def __init__(self, settings: Settings, *, start_timeout_s: float = 300.0) -> None:
        self.settings = settings
        self.start_timeout_s = start_timeout_s
        self._child: _Child | None = None
        self._starting: asyncio.Task[None] | None = None
        self._seq = itertools.count(1)
        self._running: tuple[int, str] | None = None
        self._stop_asked: _StopAsked | None = None
        self._forced: Outcome | None = None  # why the guard killed the child
        self._preempting: str | None = None  # set once the trainer stops: every job stops
        self._memory = MemoryWatch(memory_budget_bytes(settings))
        self._watched: _Watched | None = None
        self.logs = JobLogs(settings)  # each attempt's stdout/stderr, for the runner to upload
        self._oom: OomKills | None = None  # the running job's cgroup OOM-kill count
        self.capacity: Capacity | None = None  # what the child reported when it got ready
        self.import_s: float | None = None
        self.gpus: list[tuple[str, int]] = []  # (name, memory bytes) of each GPU the child sees
        self.jobs_completed = self.jobs_failed = self.jobs_cancelled = self.restarts = 0
        self.jobs_preempted = 0
        self.failures: collections.Counter[str] = collections.Counter()  # attempts by cause

    @property
    def pid(self) -> int | None:
        """The child's process id (None before start)."""
        return self._child.process.pid if self._child else None

    async def start(self) -> None:
        """Spawn the child and wait until it has imported torch and the recipes."""
        if self._child is None:
            if self._starting is None or self._starting.done():
                self._starting = asyncio.create_task(self._spawn())
            await asyncio.shield(self._starting)

    async def _spawn(self) -> None:
        ctx = mp.get_context("spawn")
        cmd_read, cmd_write = ctx.Pipe(duplex=False)
        evt_read, evt_write = ctx.Pipe(duplex=False)
        process = ctx.Process(
            target=child_main,
            args=(self.settings, cmd_read, evt_write),
            name="sparktrainer-train",
            daemon=False,
        )
        process.start()
        cmd_read.close()
        evt_write.close()  # so the reader sees EOF as soon as the child dies
        inbox: asyncio.Queue[tuple[Any, ...]] = asyncio.Queue()
        threading.Thread(
            target=pump_events,
            args=(evt_read, asyncio.get_running_loop(), inbox, self._beat),
            name="worker-events",
            daemon=True,
        ).start()
        try:
            first = await asyncio.wait_for(inbox.get(), self.start_timeout_s)
        except TimeoutError:
            first = ("eof",)
        except asyncio.CancelledError:  # stopped while it imported: it has no job yet
            process.kill()
            await asyncio.to_thread(process.join, 5)
            raise
        if first[0] != "ready":
            process.kill()
            await asyncio.to_thread(process.join, 5)
            raise WorkerError(f"training worker failed to start (exit code {process.exitcode})")
        self.import_s = first[1]["import_s"]
        self.gpus = [(str(name), int(memory)) for name, memory in first[1].get("gpus", [])]
        reported = first[1]["capacity"]
        self.capacity = Capacity(
            **{**reported, "gpu_memory_bytes": tuple(reported["gpu_memory_bytes"])}
        )
        self._child = _Child(process, cmd_write, inbox)
        log.info("worker_ready", pid=process.pid, import_s=round(self.import_s, 2))

    async def run(self, job: JobValidated, attempt: int, on_event: OnEvent) -> Outcome:
        """Train ``job`` in the child; ``on_event`` is awaited for each event, in order."""
        if self._running is not None:
            raise RuntimeError(f"worker is busy with job {self._running[1]}")
        seq = next(self._seq)
        self._running = (seq, job.job_id)
        self._stop_asked = self._forced = None
        if self._preempting is not None:  # a job taken just as the trainer began to stop
            self._ask_stop(seq, "preempt", self._preempting)
        guard = asyncio.create_task(self._guard(seq, time_limit_s(job, self.settings.limits)))
        try:
            outcome = None
            for _ in range(2):  # a child that died before it took the job: a fresh one gets it
                outcome = await self._exchange(
                    await self._live_child(), seq, job, attempt, on_event
                )
                if outcome is not None:
                    break
        finally:
            self._running = self._watched = None
            guard.cancel()
        outcome = outcome or endings.died(None, False, "before it took the job")
        self._count(outcome)
        return outcome

    async def _live_child(self) -> _Child:
        """The child, replaced first if it died while idle (that is no job's failure)."""
        if self._child is not None and not self._child.process.is_alive():
            await self._died(self._child)
        await self.start()
        assert self._child is not None
        return self._child

    async def _exchange(
        self, child: _Child, seq: int, job: JobValidated, attempt: int, on_event: OnEvent
    ) -> Outcome | None:
        """Run the job on ``child``; None when the child died before accepting it."""
        failure: BaseException | None = None
        accepted = False
        self._oom = OomKills(child.process.pid)
        try:
            log_path = self.logs.path(job.job_id, attempt)
            child.commands.send(("run", seq, job.model_dump_json(), attempt, str(log_path)))
            rule = HangRule.from_settings(self.settings)  # None: no hang watchdog
            if rule is not None:  # watched from the moment the child has the job
                self._watched = _Watched(seq, ProgressWatch(rule, time.monotonic()), log_path)
            asked = self._stop_asked
            if asked is not None:  # asked while the child was (re)starting
                child.commands.send(("cancel", seq, asked.reason, asked.kind))
        except OSError:
            await self._died(child)
            return None
        while True:
            try:
                message = await child.inbox.get()
            except asyncio.CancelledError:
                self._send(child, ("cancel", seq, "the trainer stopped waiting for this job"))
                raise
            if message[0] == "eof":
                forced = self._forced is not None
                died = await self._died(child)
                if not (accepted or forced):
                    return None
                # a killed child wrote no last words: the log says why it ended
                note(log_path, f"worker ended [{died.cause}]: {died.reason}")
                return died
            if message[1] != seq:
                continue  # left over from a job the caller stopped waiting for
            if message[0] == "accepted":
                accepted = True
            elif message[0] == "outcome":
                if failure is not None:
                    raise failure
                return Outcome.from_child(message[2])
            elif failure is None:
                failure = await self._deliver(on_event, message, child, seq)

    async def _deliver(
        self, on_event: OnEvent, message: tuple[Any, ...], child: _Child, seq: int
    ) -> BaseException | None:
        """Await ``on_event``; if it fails, cancel the job and report the error at its end."""
        event = EVENT_TYPES[message[2]].model_validate_json(message[3])
        try:
            await on_event(event)
        except Exception as e:
            self._send(child, ("cancel", seq, f"event delivery failed: {type(e).__name__}"))
            return e
        return None

    async def _died(self, child: _Child) -> Outcome:
        await asyncio.to_thread(child.process.join, 10)
        code = child.process.exitcode
        if self._child is child:
            self._child = None
            self.restarts += 1
            self._starting = asyncio.create_task(self._spawn())  # warm again for the next job
        log.warning("worker_died", pid=child.process.pid, exit_code=code)
        forced, self._forced = self._forced, None
        oom, self._oom = self._oom, None
        return forced or endings.died(code, oom is not None and oom.happened())

    # -- the guard -------------------------------------------------------------------------

    async def _guard(self, seq: int, limit_s: float) -> None:
        """While job ``seq`` runs: the memory budget, its time limit, stops that do not stop,
        a loop that stopped beating."""
        loop = asyncio.get_running_loop()
        started = loop.time()
        while True:
            await asyncio.sleep(GUARD_INTERVAL_S)
            child = self._child
            if child is None or self._forced is not None or not child.process.is_alive():
                continue
            used = self._memory.over(child.process.pid)
            if used is not None:
                self._force(child, endings.over_budget(used, self.settings))
                continue
            now = loop.time()
            if self._stop_asked is None and limit_s and now - started > limit_s:
                self._ask_stop(seq, "timeout", f"job exceeded its time limit of {limit_s:g} s")
            asked = self._stop_asked
            if asked is not None and now - asked.at > self._grace_s(asked):
                self._force(child, self._stopped_by_force(asked))
            elif asked is None and (hang := self._hang(seq)) is not None:
                await self._end_hung(child, hang)

    def _beat(self, message: tuple[Any, ...], at: float) -> None:
        """A beat of the loop (``("beat", seq, step)``, taken off the pipe at ``at``)."""
        watched = self._watched
        if watched is not None and watched.seq == message[1]:
            watched.progress.beat(at, message[2])

    def _hang(self, seq: int) -> Hang | None:
        watched = self._watched
        if watched is None or watched.seq != seq:
            return None
        return watched.progress.hung(time.monotonic())

    async def _end_hung(self, child: _Child, hang: Hang) -> None:
        """Write the stacks of the worker (and its ranks) to the attempt's log, then kill it."""
        assert self._watched is not None
        log.warning("worker_hung", pid=child.process.pid, why=hang.describe())
        note(self._watched.log_path, f"hang watchdog: {hang.describe()}; the stacks follow")
        ask_for_stacks(child.process.pid)
        await asyncio.sleep(STACKS_WAIT_S)
        self._force(child, endings.hung(hang))

    def _grace_s(self, asked: _StopAsked) -> float:
        """How long a stop may take: a preemption has the budget to checkpoint and upload."""
        if asked.kind == "preempt":
            return self.settings.preempt_grace_s
        return self.settings.worker_stop_grace_s

    def _ask_stop(self, seq: int, kind: str, reason: str) -> None:
        if self._stop_asked is None:
            self._stop_asked = _StopAsked(kind, reason, asyncio.get_running_loop().time())
        if self._child is not None:
            self._send(self._child, ("cancel", seq, reason, kind))

    def _force(self, child: _Child, outcome: Outcome) -> None:
        """Kill the child and its ranks; the job ends with ``outcome``."""
        log.warning("worker_killed", pid=child.process.pid, reason=outcome.reason)
        self._forced = outcome
        self._memory.kill(child.process.pid)

    def _stopped_by_force(self, asked: _StopAsked) -> Outcome:
        return endings.stopped_by_force(asked.kind, asked.reason, self._grace_s(asked))

    def cancel(self, job_id: str, reason: str = "cancel requested") -> bool:
        """Ask the running job to stop at its next step; False when ``job_id`` is not running."""
        if self._running is None or self._running[1] != job_id:
            return False
        self._ask_stop(self._running[0], "cancel", reason)
        return True

    def give_way(self, job_id: str, reason: str) -> bool:
        """Stop the running job as a preemption does (checkpoint at its next step), for a job
        of a higher priority; the trainer goes on. False when ``job_id`` is not running or is
        stopping already (a cancel, its time limit, the trainer's stop)."""
        if self._running is None or self._running[1] != job_id or self._stop_asked is not None:
            return False
        self._ask_stop(self._running[0], "preempt", reason)
        return True

    def preempt(self, reason: str) -> bool:
        """The trainer is stopping: the running job (and any started from now on) checkpoints at
        its next optimizer step and stops, within ``preempt_grace_s``; False when none runs."""
        self._preempting = reason
        if self._running is None:
            return False
        self._ask_stop(self._running[0], "preempt", reason)
        return True

    @staticmethod
    def _send(child: _Child, command: tuple[Any, ...]) -> bool:
        try:
            child.commands.send(command)
        except OSError:
            return False
        return True

    async def stop(self, timeout_s: float = 30.0) -> None:
        """Let the child finish its job and exit; kill it after ``timeout_s``."""
        if self._starting is not None and not self._starting.done():
            if self._running is None:  # a child still importing for no job: no need to wait
                self._starting.cancel()
            await asyncio.gather(self._starting, return_exceptions=True)
        child, self._child = self._child, None
        self.logs.close()
        if child is None:
            return
        self._send(child, ("stop",))
        await asyncio.to_thread(child.process.join, timeout_s)
        if child.process.is_alive():
            child.process.kill()
            await asyncio.to_thread(child.process.join, 5)
        child.commands.close()

    def _count(self, outcome: Outcome) -> None:
        if outcome.status != "completed":
            self.failures[(outcome.cause or FailureReason.INTERNAL).value] += 1
        if outcome.status == "completed":
            self.jobs_completed += 1
        elif outcome.status == "cancelled":
            self.jobs_cancelled += 1
        elif outcome.status == "preempted":
            self.jobs_preempted += 1
        else:
            self.jobs_failed += 1
