"""Several hosts (issue 18's must-show): a trainer cut off from the network mid-job.

Three network namespaces (tests/integration/hosts_kit.py): tansu and SeaweedFS on a server
host, a trainer process on each of two trainer hosts, each host on its own veth link. The job
goes to one trainer; after its first checkpoint that trainer's link is cut. Its group session
times out, the other trainer takes the partition, resumes from the checkpoint and completes.
Then the link comes back: the old trainer finds its attempt superseded and stands down (exits
0) without a second model, a checkpoint of its own or an end. The test's clients run in the
server host. Skipped only without root or ``ip netns``.
"""

from __future__ import annotations

import asyncio
import resource
import time
import uuid
from pathlib import Path
from typing import Any

import pytest

from sparktrainer.bus.kafka import make_producer, send
from sparktrainer.bus.reader import LogReader
from sparktrainer.contracts.envelope import decode, encode
from sparktrainer.contracts.events import (
    CheckpointSaved,
    JobCancelled,
    JobCompleted,
    JobFailed,
    JobPreempted,
    JobStarted,
    JobValidated,
    ModelRegistered,
)
from sparktrainer.contracts.schedule_events import TrainerHeartbeat
from sparktrainer.contracts.topics import JOBS_LIFECYCLE, MODELS_REGISTERED, TRAINERS
from sparktrainer.settings import Settings
from sparktrainer.storage.layout import checkpoint_prefix, model_prefix
from sparktrainer.storage.outcomes import read_outcome, recorded_attempt
from sparktrainer.storage.s3 import ObjectStore
from sparktrainer.validation.checks import validate_job
from tests.integration.hosts_kit import (
    Hosts,
    in_namespace,
    start_servers,
    start_trainer,
    why_no_namespaces,
)
from tests.integration.tap import Tap

pytestmark = [pytest.mark.integration, pytest.mark.slow]
GROUP = "hosts-trainer"
TERMINAL = (JobCompleted, JobFailed, JobCancelled)


@pytest.fixture
def hosts() -> Any:
    why = why_no_namespaces()
    if why is not None:
        pytest.skip(why)
    made = Hosts()
    try:
        made.make_server()
        yield made
    finally:
        made.close()  # every process and namespace, however the test ended


def _job() -> JobValidated:
    spec = {
        "type": "train", "framework": "pytorch", "name": "cut me off",
        "config": {
            "architecture": "custom", "input_size": 32, "output_size": 4,
            "hidden_layers": [256, 256], "epochs": 2, "batch_size": 16,
            "checkpoint_every_steps": 20,  # the cut: after the first, ~590 steps before the end
            "data": {"source": "synthetic", "num_samples": 6144},
        },
    }  # fmt: skip
    result = validate_job(spec, None)
    assert result.valid, result.errors
    return JobValidated(job_id=f"hosts-{uuid.uuid4().hex[:8]}", name="cut me off", type="train",
                        framework="pytorch", config_kind=result.config.kind,
                        config=result.config)  # fmt: skip


async def _story(settings: Settings, job_id: str) -> list[Any]:
    """Every event of the job on the lifecycle and registration topics, from the log itself."""
    events = []
    async with LogReader(settings) as reader:
        tps = await reader.key_partitions((JOBS_LIFECYCLE, MODELS_REGISTERED), job_id.encode())
        await reader.assign_at_beginning(tps)
        async for batch in reader.read_range(await reader.ends(tps)):
            events += [decode(r.value, r.headers) for r in batch]
    return [e for e in events if getattr(e, "job_id", None) == job_id]


async def _scenario(hosts: Hosts, home: Path) -> dict[str, Any]:
    settings = await start_servers(hosts, home)
    names = ("h1", "h2")
    started = await asyncio.gather(*(start_trainer(hosts, h, settings, home, GROUP) for h in names))
    procs = dict(zip(names, started, strict=True))
    job = _job()
    mine = lambda cls: lambda e: isinstance(e, cls) and e.job_id == job.job_id  # noqa: E731
    producer = make_producer(settings)
    await producer.start()
    try:
        async with Tap(settings, JOBS_LIFECYCLE, MODELS_REGISTERED, TRAINERS) as tap:
            await send(producer, encode(job, "test"))
            first, *_ = await tap.wait_for(lambda e: mine(CheckpointSaved)(e) and e.attempt == 1)
            beat, *_ = await tap.wait_for(lambda e: isinstance(e, TrainerHeartbeat)
                                        and e.running_job_id == job.job_id)  # fmt: skip
            old = next(h for h, p in procs.items() if f"/{p.pid}/" in beat.trainer_id)
            hosts.cut(old)
            cut_at = time.monotonic()
            resumed, *_ = await tap.wait_for(lambda e: mine(JobStarted)(e) and e.attempt == 2,
                                           1, 120)  # fmt: skip
            await tap.wait_for(lambda e: isinstance(e, TERMINAL) and e.job_id == job.job_id,
                               1, 120)  # fmt: skip
            moved_s = time.monotonic() - cut_at
            hosts.mend(old)
            code = await asyncio.to_thread(procs[old].wait, 90)
    finally:
        await producer.stop()
    store = ObjectStore.from_settings(settings)
    return {
        "first": first, "resumed": resumed, "old": old, "code": code, "moved_s": moved_s,
        "events": await _story(settings, job.job_id), "job": job,
        "checkpoints": list(store.list(checkpoint_prefix(job.job_id))),
        "model": {k: store.get_hashed(k).sha256 for k in store.list(model_prefix(job.job_id))},
        "outcome": read_outcome(store, job.job_id),
        "attempt": recorded_attempt(store, job.job_id),
        "other_alive": procs["h2" if old == "h1" else "h1"].poll() is None,
    }  # fmt: skip


def test_a_trainer_cut_off_mid_job_stands_down_when_it_comes_back(
    hosts: Hosts, tmp_path: Path
) -> None:
    cpu = resource.getrusage(resource.RUSAGE_CHILDREN)
    own = time.process_time()
    started = time.monotonic()
    seen = in_namespace(hosts.server, lambda: _scenario(hosts, tmp_path), timeout_s=400)
    hosts.close()  # (again in the fixture's finalizer: harmless) so the children's CPU counts
    wall = time.monotonic() - started
    after = resource.getrusage(resource.RUSAGE_CHILDREN)
    children = after.ru_utime + after.ru_stime - cpu.ru_utime - cpu.ru_stime
    print(f"hosts test: {wall:.1f} s wall, CPU {children:.1f} s in its processes and "
          f"{time.process_time() - own:.1f} s in the test's, job moved "
          f"{seen['moved_s']:.1f} s after the cut")  # fmt: skip
    job, events = seen["job"], seen["events"]
    ends = [e for e in events if isinstance(e, TERMINAL)]
    models = [e for e in events if isinstance(e, ModelRegistered)]
    assert [type(e) for e in ends] == [JobCompleted], ends
    assert ends[0].attempt == 2 and len(models) == 1
    # The job moved and resumed from the old trainer's checkpoint, not from scratch.
    assert seen["resumed"].resumed_from_step is not None
    assert seen["resumed"].resumed_from_step >= seen["first"].step
    # The old trainer came back and stood down: exit 0, nothing of its attempt after the move.
    assert seen["code"] == 0 and seen["other_alive"]
    assert not [e for e in events if isinstance(e, (*TERMINAL, JobPreempted)) and e.attempt == 1]
    assert seen["attempt"] == 2 and seen["outcome"].status == "completed"
    assert seen["checkpoints"] == []  # the end removed them; no stale one came back
    files = {a.path: a.sha256 for a in models[0].artifacts}
    stored = {k.removeprefix(model_prefix(job.job_id)): h for k, h in seen["model"].items()}
    assert {k: stored.get(k) for k in files} == files  # the registered bytes, not the stale ones
