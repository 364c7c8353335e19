"""Chaos on the embedded stack: tiny jobs on two trainer processes while random trainers are
stopped (SIGTERM) or killed (SIGKILL) mid-job, bounded in count and time.

    nice -n 19 python bench/chaos_bench.py [--jobs 12] [--kills 8] [--timeout 900] [--out STEM]

Its own embedded stack (tansu + SeaweedFS), the validator in this process and two trainers as
real processes (``python -m consumers.trainer``, each with its warm worker). Every job is
submitted at once; then, every 1-4 s, one trainer that is running a job (its worker named on
the job's JobStarted) gets SIGTERM (as Kubernetes stops a pod: to the trainer alone) or SIGKILL
(to its process group: the trainer and its worker, a lost host), chosen at random, and a fresh
trainer replaces it. Link cuts are not here: they need the network namespaces of
tests/integration/hosts_kit.py (test_hosts.py cuts a link for real).

Everything is read from the events (lifecycle and registrations), stamped when this process
received them: jobs lost (no end), duplicate models (a job registered by two attempts), corrupt
checkpoints (skipped on a resume, or a resume refused), the steps lost per stop (the step the
stopped attempt reached, the higher of its last progress and its JobPreempted step, minus the
next attempt's ``resumed_from_step``), and resume to first step (signal sent -> the next
attempt's first JobProgress; and that attempt's JobStarted -> its first step). ``--out STEM``
writes STEM.json and STEM.md.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import os
import random
import signal
import subprocess
import sys
import time
import uuid
from pathlib import Path
from typing import Any

import psutil

sys.path.insert(0, str(Path(__file__).resolve().parent))

from benchkit import bench_stack, emit, percentile, stack_env

from sparktrainer.bus.kafka import make_producer
from sparktrainer.bus.reader import LogReader
from sparktrainer.contracts.envelope import EnvelopeError, decode
from sparktrainer.contracts.events import (
    JobCompleted,
    JobFailed,
    JobPreempted,
    JobProgress,
    JobStarted,
    ModelRegistered,
)
from sparktrainer.contracts.topics import JOBS_LIFECYCLE, JOBS_SUBMITTED, MODELS_REGISTERED
from sparktrainer.services.validator import build_runtime
from sparktrainer.settings import Settings
from sparktrainer.storage.s3 import ObjectStore

TRAINERS = 2
ENDS = (JobCompleted, JobFailed)
GOALS = {"jobs_lost": 0, "duplicate_models": 0, "corrupt_checkpoints": 0, "lost_steps_max": 1}


def tiny_job(rng: random.Random, n: int) -> dict[str, Any]:
    """A synthetic MLP of 2-4 epochs of 820 steps, or a 2-epoch digits MLP (a third of them)."""
    if n % 3 == 2:
        config = {"input_size": 64, "output_size": 10, "hidden_layers": [32], "epochs": 2,
                  "batch_size": 16, "data": {"source": "digits"}}  # fmt: skip
    else:
        config = {"input_size": 16, "output_size": 4, "hidden_layers": [128, 128],
                  "epochs": rng.randint(2, 4), "batch_size": 8,
                  "data": {"source": "synthetic", "num_samples": 8192}}  # fmt: skip
    return {"job_id": f"chaos-{n:02d}-{uuid.uuid4().hex[:6]}", "type": "train",
            "framework": "pytorch", "config": {"architecture": "custom", **config}}  # fmt: skip


async def start_trainer(env: dict[str, str], group: str) -> subprocess.Popen[bytes]:
    """``python -m consumers.trainer`` in its own process group, once it says READY."""
    proc = subprocess.Popen(  # noqa: ASYNC220 - starting is instant; reading is offloaded
        [sys.executable, "-m", "consumers.trainer", "--group-id", group],
        env=env, stderr=subprocess.PIPE, stdout=subprocess.DEVNULL, start_new_session=True,
    )  # fmt: skip
    assert proc.stderr is not None
    loop = asyncio.get_running_loop()
    while True:
        line = await asyncio.wait_for(loop.run_in_executor(None, proc.stderr.readline), 300)
        if not line:
            raise RuntimeError(f"a trainer exited before it was ready ({proc.wait()})")
        if line.startswith(b"READY trainer"):
            loop.run_in_executor(None, proc.stderr.read)  # keep draining: never block it
            return proc


def stop_trainer(proc: subprocess.Popen[bytes], grace_s: float = 60) -> None:
    """SIGTERM, then SIGKILL to its group past ``grace_s``."""
    if proc.poll() is None:
        proc.terminate()
        try:
            proc.wait(grace_s)
        except subprocess.TimeoutExpired:
            with contextlib.suppress(ProcessLookupError):
                os.killpg(proc.pid, signal.SIGKILL)
            proc.wait()


class Tail:
    """Lifecycle events and registrations from now on, each with the time it was received."""

    def __init__(self, settings: Settings) -> None:
        self.reader = LogReader(settings)
        self.events: list[tuple[float, Any]] = []
        self._task: asyncio.Task[None] | None = None
        self._more = asyncio.Event()  # set whenever an event arrives

    async def __aenter__(self) -> Tail:
        await self.reader.start()
        topics = (JOBS_LIFECYCLE, MODELS_REGISTERED)
        await self.reader.assign_at_end(await self.reader.partitions(topics))
        self._task = asyncio.create_task(self._pump())
        return self

    async def __aexit__(self, *exc: object) -> None:
        assert self._task is not None
        self._task.cancel()
        await asyncio.gather(self._task, return_exceptions=True)
        await self.reader.stop()

    async def _pump(self) -> None:
        while True:
            for r in await self.reader.read(timeout_ms=100):
                with contextlib.suppress(EnvelopeError):
                    self.events.append((time.monotonic(), decode(r.value, r.headers)))
                    self._more.set()

    async def until_ended(self, ids: set[str], deadline: float) -> None:
        """Return once every job in ``ids`` has an end, or at ``deadline`` (monotonic)."""
        while self.ended(ids) != ids and (left := deadline - time.monotonic()) > 0:
            self._more.clear()
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._more.wait(), left)

    def running(self) -> dict[int, tuple[str, int]]:
        """Worker pid -> (job, attempt) of every attempt started and not yet ended or stopped."""
        now: dict[tuple[str, int], int] = {}
        for _, e in self.events:
            if isinstance(e, JobStarted):
                now[(e.job_id, e.attempt)] = int(e.worker.rsplit("/", 1)[1])
            elif isinstance(e, (*ENDS, JobPreempted)):
                now.pop((e.job_id, e.attempt), None)
        return {pid: key for key, pid in now.items()}

    def ended(self, ids: set[str]) -> set[str]:
        return {e.job_id for _, e in self.events if isinstance(e, ENDS) and e.job_id in ids}


async def chaos(
    tail: Tail, trainers: list[subprocess.Popen[bytes]], env: dict[str, str], group: str,
    ids: set[str], kills: int, rng: random.Random, deadline: float,
) -> list[dict[str, Any]]:  # fmt: skip
    """Stop or kill a busy trainer every 1-4 s until ``kills`` or every job ended."""
    done: list[dict[str, Any]] = []
    stopping: list[asyncio.Future[None]] = []
    while len(done) < kills and time.monotonic() < deadline and tail.ended(ids) != ids:
        await asyncio.sleep(rng.uniform(1.0, 4.0))
        running = tail.running()
        busy = []
        for proc in trainers:
            with contextlib.suppress(psutil.Error):
                kids = psutil.Process(proc.pid).children(recursive=True)
                busy += [(proc, running[k.pid]) for k in kids if k.pid in running]
        if not busy:
            continue
        proc, (job_id, attempt) = rng.choice(busy)
        kind = rng.choice(("SIGTERM", "SIGKILL"))
        sent = time.monotonic()
        if kind == "SIGTERM":
            proc.terminate()
            stopping.append(asyncio.ensure_future(asyncio.to_thread(stop_trainer, proc)))
        else:
            with contextlib.suppress(ProcessLookupError):
                os.killpg(proc.pid, signal.SIGKILL)
            proc.wait()
        done.append({"kind": kind, "job_id": job_id, "attempt": attempt, "sent": sent})
        trainers.remove(proc)
        trainers.append(await start_trainer(env, group))
    await asyncio.gather(*stopping)
    return done


def after_kill(events: list[tuple[float, Any]], kill: dict[str, Any]) -> dict[str, Any]:
    """What became of the killed attempt: the step it reached, where the next one resumed."""
    job_id, attempt = kill["job_id"], kill["attempt"]
    mine = [(t, e) for t, e in events if getattr(e, "job_id", None) == job_id]
    steps = [e.step for _, e in mine if isinstance(e, JobProgress) and e.attempt == attempt]
    stopped = [e for _, e in mine if isinstance(e, JobPreempted) and e.attempt == attempt]
    reached = max([*steps, *[e.step for e in stopped if e.step is not None], 0])
    later = sorted((e.attempt, t, e) for t, e in mine
                   if isinstance(e, JobStarted) and e.attempt > attempt)  # fmt: skip
    out = {**kill, "reached_step": reached, "preempted_step": stopped[0].step if stopped else None}
    if not later:
        out["resumed"] = False  # it ended (or was lost) before another attempt started
        return out
    nxt_attempt, started, nxt = later[0]
    first = [t for t, e in mine if isinstance(e, JobProgress) and e.attempt == nxt_attempt]
    out.update(resumed=True, resumed_from_step=nxt.resumed_from_step or 0,
               lost_steps=reached - (nxt.resumed_from_step or 0))  # fmt: skip
    if first:
        out["signal_to_first_step_s"] = round(min(first) - kill["sent"], 3)
        out["start_to_first_step_s"] = round(min(first) - started, 3)
    return out


def verdict(events: list[tuple[float, Any]], ids: set[str], kills: list[dict[str, Any]]) -> dict:
    """The counts the goals are set on, and the per-kill figures."""
    ev = [e for _, e in events if getattr(e, "job_id", None) in ids]
    ends = {e.job_id: e for e in ev if isinstance(e, ENDS)}
    registered: dict[str, set[Any]] = {}
    for e in ev:
        if isinstance(e, ModelRegistered):
            registered.setdefault(e.job_id, set()).add(e.created_at)  # a resent record: once
    skipped = sum(len(e.skipped_checkpoints) for e in ev if isinstance(e, JobStarted))
    refused = [e for e in ends.values()
               if isinstance(e, JobFailed) and e.error_type == "UnsafeArtifactError"]  # fmt: skip
    per_kill = [after_kill(events, k) for k in kills]
    return {
        "jobs": len(ids),
        "jobs_completed": sum(isinstance(e, JobCompleted) for e in ends.values()),
        "jobs_failed": {
            e.job_id: f"{e.cause}: {e.reason}"[:200]
            for e in ends.values()
            if isinstance(e, JobFailed)
        },
        "jobs_lost": sorted(ids - set(ends)),
        "duplicate_models": sum(len(v) - 1 for v in registered.values()),
        "corrupt_checkpoints": skipped + len(refused),
        "kills": per_kill,
    }


def figures(found: dict[str, Any]) -> dict[str, Any]:
    """Lost steps per SIGTERM and SIGKILL, resume times (p50/p99) over the resumed kills."""
    out: dict[str, Any] = {}
    for kind in ("SIGTERM", "SIGKILL"):
        resumed = [k for k in found["kills"] if k["kind"] == kind and k.get("resumed")]
        lost = [k["lost_steps"] for k in resumed]
        out[kind] = {"sent": sum(k["kind"] == kind for k in found["kills"]),
                     "resumed": len(resumed), "lost_steps": lost,
                     "lost_steps_max": max(lost, default=None)}  # fmt: skip
        for name in ("signal_to_first_step_s", "start_to_first_step_s"):
            values = [k[name] for k in resumed if name in k]
            if values:
                out[kind][name] = {"p50": percentile(values, 0.5), "p99": percentile(values, 0.99)}
    return out


async def run(settings: Settings, jobs: int, kills: int, timeout_s: float, seed: int) -> dict:
    rng = random.Random(seed)
    group = f"bench-chaos-{uuid.uuid4().hex[:8]}"
    env = {**os.environ, **stack_env(settings), "SPARKTRAINER_LOG_LEVEL": "WARNING",
           "SPARKTRAINER_PROGRESS_EVERY_S": "0.05", "OMP_NUM_THREADS": "1",
           "SPARKTRAINER_JOB_MAX_ATTEMPTS": str(kills + 3)}  # fmt: skip
    validator = build_runtime(settings, ObjectStore.from_settings(settings),
                              group_id=f"{group}-validator")  # fmt: skip
    task = asyncio.create_task(validator.run())
    producer = make_producer(settings)
    await producer.start()
    trainers: list[subprocess.Popen[bytes]] = []
    started = time.monotonic()
    try:
        await validator.wait_positioned(600)
        trainers += await asyncio.gather(*(start_trainer(env, group) for _ in range(TRAINERS)))
        plan = [tiny_job(rng, n) for n in range(jobs)]
        ids = {j["job_id"] for j in plan}
        async with Tail(settings) as tail:
            for j in plan:
                await producer.send_and_wait(JOBS_SUBMITTED, json.dumps(j).encode())
            deadline = started + timeout_s
            done = await chaos(tail, trainers, env, group, ids, kills, rng, deadline)
            await tail.until_ended(ids, deadline)
            run_s = time.monotonic() - started
            found = verdict(tail.events, ids, done)
    finally:
        await asyncio.gather(*(asyncio.to_thread(stop_trainer, p) for p in trainers))
        await producer.stop()
        validator.stop()
        await asyncio.gather(task, return_exceptions=True)
    return {"seed": seed, "run_s": round(run_s, 1), **found, "by_signal": figures(found)}


def markdown(r: dict[str, Any]) -> str:
    """The result as the table committed beside the JSON."""
    term, kill = r["by_signal"]["SIGTERM"], r["by_signal"]["SIGKILL"]

    def times(side: dict[str, Any], name: str) -> str:
        got = side.get(name)
        return f"{got['p50']:.2f} / {got['p99']:.2f} s" if got else "-"

    rows = [
        ("jobs lost (no end)", len(r["jobs_lost"]), "0", len(r["jobs_lost"]) == 0),
        ("duplicate models", r["duplicate_models"], "0", r["duplicate_models"] == 0),
        ("corrupt checkpoints met", r["corrupt_checkpoints"], "0", r["corrupt_checkpoints"] == 0),
        ("lost steps per SIGTERM (max)", term["lost_steps_max"], "<= 1",
         term["lost_steps_max"] is not None and term["lost_steps_max"] <= 1),
    ]  # fmt: skip
    lines = [
        f"{r['jobs']} jobs ({r['jobs_completed']} completed, {len(r['jobs_failed'])} failed), "
        f"{len(r['kills'])} signals, {r['run_s']} s, seed {r['seed']}, 1-minute load "
        f"{r['load_before']} before and {r['load_after']} after.", "",
        "| measure | measured | goal | met? |", "| --- | --- | --- | --- |",
    ]  # fmt: skip
    lines += [f"| {a} | {b} | {c} | {'yes' if d else '**no**'} |" for a, b, c, d in rows]
    lines += [
        "", "| signal | sent | resumed | lost steps each | signal -> first step p50 / p99 "
        "| resumed start -> first step p50 / p99 |", "| --- | --- | --- | --- | --- | --- |",
    ]  # fmt: skip
    for name, side in (("SIGTERM", term), ("SIGKILL", kill)):
        lines.append(f"| {name} | {side['sent']} | {side['resumed']} | {side['lost_steps']} | "
                     f"{times(side, 'signal_to_first_step_s')} | "
                     f"{times(side, 'start_to_first_step_s')} |")  # fmt: skip
    return "\n".join(lines) + "\n"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--jobs", type=int, default=12, choices=range(1, 61), metavar="1-60")
    parser.add_argument("--kills", type=int, default=8, choices=range(0, 31), metavar="0-30")
    parser.add_argument("--timeout", type=float, default=900.0, help="seconds for the whole run")
    parser.add_argument("--seed", type=int, default=1)
    parser.add_argument("--out", type=Path, help="write OUT.json and OUT.md")
    args = parser.parse_args()
    load_before = os.getloadavg()[0]
    with bench_stack("chaos-") as settings:
        result = asyncio.run(run(settings, args.jobs, args.kills, args.timeout, args.seed))
    result.update(goals=GOALS, load_before=round(load_before, 1),
                  load_after=round(os.getloadavg()[0], 1))  # fmt: skip
    if args.out:
        args.out.with_suffix(".json").write_text(json.dumps(result, indent=1) + "\n")
        args.out.with_suffix(".md").write_text(markdown(result))
    emit(result)


if __name__ == "__main__":
    main()
