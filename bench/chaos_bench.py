"""Chaos across test hosts: tiny jobs on two trainer hosts while random trainers are stopped
(SIGTERM), killed (SIGKILL) or cut off the network mid-job, bounded in count and time.

    nice -n 19 python bench/chaos_bench.py [--jobs 12] [--strikes 12] [--timeout 900] [--out STEM]

Needs root and ``ip netns`` (as ``make test``'s several-hosts test). The hosts are
``tests/integration/hosts_kit.py``'s network namespaces: tansu and SeaweedFS on a server host,
each trainer (``python -m consumers.trainer``, with its warm worker) on a trainer host of its
own, joined to the server host by its own veth link; the bench's validator, producer and event
tail run in a thread inside the server host. Every address is on those namespaces
(10.231.0.0/16); ``Hosts.close`` kills every process and deletes every namespace at the end,
however the run ended (a SIGTERM to the bench included).

Every job is submitted at once; then, every 1-4 s, one trainer running a job (its worker named
on the job's JobStarted) is struck, the kinds in a shuffled, even mix: SIGTERM (to the trainer
alone, as Kubernetes stops a pod), SIGKILL (to its process group, trainer and worker: a lost
host) or a cut (its link taken down: its connections go silent; the link comes back once the
job started again elsewhere, or ended, or after ``MEND_AFTER_MAX_S``, and the old trainer
should then stand down). A fresh trainer on a fresh host replaces each one struck. What the
events say is ``bench/chaos_report.py``. ``--out STEM`` writes STEM.json and STEM.md.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import os
import random
import shutil
import signal
import subprocess
import sys
import tempfile
import time
import uuid
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any

import psutil

sys.path.insert(0, str(Path(__file__).resolve().parent))

from benchkit import FAST_GROUPS, emit
from chaos_report import ENDS, GOALS, KINDS, figures, markdown, verdict

from sparktrainer.bus.kafka import make_producer
from sparktrainer.bus.reader import LogReader
from sparktrainer.contracts.envelope import EnvelopeError, decode
from sparktrainer.contracts.events import JobPreempted, JobStarted
from sparktrainer.contracts.topics import JOBS_LIFECYCLE, JOBS_SUBMITTED, MODELS_REGISTERED
from sparktrainer.services.validator import build_runtime
from sparktrainer.settings import Settings
from sparktrainer.storage.s3 import ObjectStore
from tests.integration.hosts_kit import (
    Hosts,
    in_namespace,
    start_servers,
    start_trainer,
    why_no_namespaces,
)

TRAINERS = 2
MEND_AFTER_MAX_S = 60.0  # a cut link comes back at the latest this long after the cut
STAND_DOWN_S = 90.0  # how long a cut-off trainer is given to stand down once its link is back


def tiny_job(rng: random.Random, n: int) -> dict[str, Any]:
    """A synthetic MLP of 4-8 epochs of 820 steps, or a 6-epoch digits MLP (a third of them):
    long enough that the strikes land before the jobs run out."""
    if n % 3 == 2:
        config = {"input_size": 64, "output_size": 10, "hidden_layers": [32], "epochs": 6,
                  "batch_size": 16, "data": {"source": "digits"}}  # fmt: skip
    else:
        config = {"input_size": 16, "output_size": 4, "hidden_layers": [128, 128],
                  "epochs": rng.randint(4, 8), "batch_size": 8,
                  "data": {"source": "synthetic", "num_samples": 8192}}  # fmt: skip
    return {"job_id": f"chaos-{n:02d}-{uuid.uuid4().hex[:6]}", "type": "train",
            "framework": "pytorch", "config": {"architecture": "custom", **config}}  # fmt: skip


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

    async def until(self, done: Callable[[], bool], deadline: float) -> None:
        """Return once ``done()`` holds (asked on each event), or at ``deadline`` (monotonic)."""
        while not done() and (left := deadline - time.monotonic()) > 0:
            self._more.clear()
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._more.wait(), left)

    def running(self) -> dict[int, tuple[str, int]]:
        """Worker pid -> (job, attempt) of each job's latest attempt, started and not yet
        ended or stopped (an attempt superseded by a later one runs nowhere that counts)."""
        latest: dict[str, tuple[int, int]] = {}  # job -> (attempt, worker pid)
        over: set[tuple[str, int]] = set()
        for _, e in self.events:
            if isinstance(e, JobStarted) and e.attempt > latest.get(e.job_id, (0, 0))[0]:
                latest[e.job_id] = (e.attempt, int(e.worker.rsplit("/", 1)[1]))
            elif isinstance(e, (*ENDS, JobPreempted)):
                over.add((e.job_id, e.attempt))
        return {pid: (job, n) for job, (n, pid) in latest.items() if (job, n) not in over}

    def ended(self, ids: set[str]) -> set[str]:
        return {e.job_id for _, e in self.events if isinstance(e, ENDS) and e.job_id in ids}

    def moved(self, job_id: str, attempt: int) -> bool:
        """Whether a later attempt of the job started, or the job ended."""
        later = (e for _, e in self.events if getattr(e, "job_id", None) == job_id)
        return any(isinstance(e, ENDS) or (isinstance(e, JobStarted) and e.attempt > attempt)
                   for e in later)  # fmt: skip


class Pool:
    """The trainers, one a host: started, struck, replaced; ``cut_exit`` says how each cut-off
    trainer ended once its link was back (0: it stood down; None: still running, killed at the
    end by ``Hosts.close``)."""

    def __init__(self, hosts: Hosts, settings: Settings, home: Path, env: dict[str, str]) -> None:
        self.hosts, self.settings, self.home, self.env = hosts, settings, home, env
        self.group = f"bench-chaos-{uuid.uuid4().hex[:8]}"
        self.live: dict[str, subprocess.Popen[bytes]] = {}  # host -> its trainer
        self.cut_exit: dict[str, int | None] = {}
        self.made = 0

    async def add(self) -> None:
        """One more trainer, on a new host."""
        self.made += 1
        name = f"t{self.made}"
        self.live[name] = await start_trainer(self.hosts, name, self.settings, self.home,
                                              self.group, **self.env)  # fmt: skip

    def busy(self, running: dict[int, tuple[str, int]]) -> list[tuple[str, tuple[str, int]]]:
        """(host, (job, attempt)) of each live trainer whose worker runs an attempt."""
        out = []
        for name, proc in self.live.items():
            with contextlib.suppress(psutil.Error):
                kids = psutil.Process(proc.pid).children(recursive=True)
                out += [(name, running[k.pid]) for k in kids if k.pid in running]
        return out

    def strike(self, name: str, kind: str, tail: Tail, job: tuple[str, int]) -> Awaitable[Any]:
        """Stop, kill or cut off the trainer on ``name``; what is left to wait for."""
        proc = self.live.pop(name)
        if kind == "SIGTERM":
            proc.terminate()
            return asyncio.to_thread(stop_trainer, proc)
        if kind == "SIGKILL":
            with contextlib.suppress(ProcessLookupError):
                os.killpg(proc.pid, signal.SIGKILL)
            proc.wait()
            return asyncio.sleep(0)
        self.hosts.cut(name)
        return asyncio.ensure_future(self._mend_when_moved(name, proc, tail, job))

    async def _mend_when_moved(
        self, name: str, proc: subprocess.Popen[bytes], tail: Tail, job: tuple[str, int]
    ) -> None:
        await tail.until(lambda: tail.moved(*job), time.monotonic() + MEND_AFTER_MAX_S)
        self.hosts.mend(name)
        try:
            self.cut_exit[name] = await asyncio.to_thread(proc.wait, STAND_DOWN_S)
        except subprocess.TimeoutExpired:
            self.cut_exit[name] = None


async def chaos(
    tail: Tail, pool: Pool, ids: set[str], kinds: list[str], rng: random.Random, deadline: float
) -> list[dict[str, Any]]:
    """Strike a busy trainer every 1-4 s, the next of ``kinds`` each time, until they are spent
    or every job ended; a fresh trainer replaces each."""
    done: list[dict[str, Any]] = []
    pending: list[Awaitable[Any]] = []
    while len(done) < len(kinds) and time.monotonic() < deadline and tail.ended(ids) != ids:
        await asyncio.sleep(rng.uniform(1.0, 4.0))
        busy = pool.busy(tail.running())
        if not busy:
            continue
        name, job = rng.choice(busy)
        kind, sent = kinds[len(done)], time.monotonic()
        pending.append(pool.strike(name, kind, tail, job))
        done.append({"kind": kind, "job_id": job[0], "attempt": job[1], "sent": sent,
                     "host": name})  # fmt: skip
        await pool.add()
    await asyncio.gather(*pending)
    return done


async def run(hosts: Hosts, home: Path, jobs: int, strikes: int, timeout_s: float, seed: int
              ) -> dict[str, Any]:  # fmt: skip
    """The servers, two trainers, the jobs and the strikes; what the events said."""
    rng = random.Random(seed)
    started = time.monotonic()
    settings = (await start_servers(hosts, home)).model_copy(update=FAST_GROUPS)
    env = {"log_level": "WARNING", "progress_every_s": "0.05",
           "job_max_attempts": str(strikes + 3)}  # fmt: skip
    pool = Pool(hosts, settings, home, env)
    validator = build_runtime(settings, ObjectStore.from_settings(settings),
                              group_id=f"{pool.group}-validator")  # fmt: skip
    task = asyncio.create_task(validator.run())
    producer = make_producer(settings)
    await producer.start()
    try:
        await validator.wait_positioned(600)
        for _ in range(TRAINERS):
            await pool.add()
        plan = [tiny_job(rng, n) for n in range(jobs)]
        ids = {j["job_id"] for j in plan}
        kinds = [KINDS[n % len(KINDS)] for n in range(strikes)]
        rng.shuffle(kinds)
        async with Tail(settings) as tail:
            for j in plan:
                await producer.send_and_wait(JOBS_SUBMITTED, json.dumps(j).encode())
            deadline = started + timeout_s
            done = await chaos(tail, pool, ids, kinds, rng, deadline)
            await tail.until(lambda: tail.ended(ids) == ids, deadline)
            run_s = time.monotonic() - started
            found = verdict(tail.events, ids, done, started)
    finally:
        await producer.stop()
        validator.stop()
        await asyncio.gather(task, return_exceptions=True)
    return {"seed": seed, "run_s": round(run_s, 1), **found, "by_kind": figures(found),
            "cut_exit_codes": pool.cut_exit}  # fmt: skip


def on_hosts(jobs: int, strikes: int, timeout_s: float, seed: int) -> dict[str, Any]:
    """``run`` inside a server host; every namespace and process gone afterwards."""
    why = why_no_namespaces()
    if why is not None:
        raise SystemExit(f"chaos_bench: {why}")
    home = Path(tempfile.mkdtemp(prefix="chaos-"))
    hosts, result = Hosts(), None
    try:
        hosts.make_server()
        main = lambda: run(hosts, home, jobs, strikes, timeout_s, seed)  # noqa: E731
        result = in_namespace(hosts.server, main, timeout_s + 300)
        return result
    finally:
        hosts.close()
        if result is not None and not result["jobs_lost"]:
            shutil.rmtree(home, ignore_errors=True)
        else:  # the trainers' and servers' logs, to read why
            print(f"chaos_bench: logs kept in {home}", file=sys.stderr)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--jobs", type=int, default=12, choices=range(1, 61), metavar="1-60")
    parser.add_argument("--strikes", type=int, default=12, choices=range(0, 31), metavar="0-30")
    parser.add_argument("--timeout", type=float, default=900.0, help="seconds for the whole run")
    parser.add_argument("--seed", type=int, default=1)
    parser.add_argument("--out", type=Path, help="write OUT.json and OUT.md")
    args = parser.parse_args()
    # A SIGTERM to the bench unwinds through on_hosts' cleanup instead of leaving hosts behind.
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(143))
    os.environ.setdefault("OMP_NUM_THREADS", "1")  # the trainers' workers inherit it
    load_before = os.getloadavg()[0]
    result = on_hosts(args.jobs, args.strikes, args.timeout, args.seed)
    result.update(goals=GOALS, load_before=round(load_before, 1),
                  load_after=round(os.getloadavg()[0], 1))  # fmt: skip
    if args.out:
        args.out.with_suffix(".json").write_text(json.dumps(result, indent=1) + "\n")
        args.out.with_suffix(".md").write_text(markdown(result))
    emit(result)


if __name__ == "__main__":
    main()
