"""The trainer's clock for an attempt (training/worker/clock.py) and the usage contract."""

from __future__ import annotations

import math
import os
import subprocess
import sys

import pytest
from pydantic import ValidationError

from sparktrainer.contracts.caps import Capacity
from sparktrainer.contracts.events import JobCancelled, JobCompleted, JobFailed, JobPreempted
from sparktrainer.contracts.kinds import kind_of
from sparktrainer.contracts.usage import AttemptUsage
from sparktrainer.training.worker.clock import AttemptClock, process_cpu_s


class Fake:
    """A worker's pid and CPU seconds, and a wall clock, set by the test."""

    def __init__(self) -> None:
        self.pid: int | None = 10
        self.cpu: dict[int, float | None] = {10: 100.0}
        self.now = 1000.0

    def clock(self, gpus: int = 0) -> AttemptClock:
        return AttemptClock(lambda: self.pid, gpus, self.cpu.get, lambda: self.now)


def test_an_attempt_counts_its_wall_time_and_the_workers_cpu_from_its_start() -> None:
    fake = Fake()
    clock = fake.clock(gpus=2)
    fake.cpu[10], fake.now = 103.5, 1010.0
    used = clock.usage(attempt=1)
    assert used == AttemptUsage(attempt=1, wall_s=10.0, gpus=2, cpu_s=3.5)
    assert used.gpu_s == 20.0  # wall x GPUs held


def test_a_killed_worker_keeps_its_last_sample_and_its_replacement_counts_too() -> None:
    fake = Fake()
    clock = fake.clock()
    fake.cpu[10] = 104.0
    clock.sample()
    fake.cpu[10] = None  # killed: psutil finds no process
    fake.pid, fake.cpu[11] = 11, 7.0  # a fresh worker (its imports before this sample: not ours)
    clock.sample()
    fake.cpu[11], fake.now = 9.5, 1005.0
    used = clock.usage(attempt=2)
    assert used.cpu_s == pytest.approx(4.0 + 2.5) and used.wall_s == 5.0 and used.gpu_s == 0.0


def test_a_worker_without_a_pid_yet_counts_from_its_first_sample() -> None:
    fake = Fake()
    fake.pid = None  # not spawned when the attempt began
    clock = fake.clock()
    fake.pid, fake.cpu[10] = 10, 50.0
    clock.sample()
    fake.cpu[10] = 51.0
    assert clock.usage(1).cpu_s == 1.0


def test_the_cpu_of_a_real_process_and_its_children_and_none_once_it_is_gone() -> None:
    busy = "import time\nt = time.process_time()\nwhile time.process_time() - t < 0.2: pass\n"
    parent = subprocess.Popen(  # a parent whose child burns 0.2 s of CPU, then waits on stdin
        [sys.executable, "-c", f"import subprocess,sys; subprocess.run([sys.executable, '-c', "
         f"{busy!r}]); sys.stdin.read()"],
        stdin=subprocess.PIPE,
    )  # fmt: skip
    try:
        seen = 0.0
        for _ in range(200):  # bounded: the child's 0.2 s reaped into children_user
            seen = process_cpu_s(parent.pid) or 0.0
            if seen >= 0.2:
                break
            subprocess.run(["sleep", "0.05"], check=True)
        assert seen >= 0.2
    finally:
        parent.communicate(b"", timeout=30)
    assert process_cpu_s(parent.pid) is None
    assert (process_cpu_s(os.getpid()) or 0) > 0


def test_gpus_held_are_one_per_process_on_a_gpu_trainer_and_none_on_a_cpu_one() -> None:
    config = kind_of("pytorch.mlp").config.model_validate(
        {"input_size": 4, "output_size": 2, "distributed": {"enabled": True, "world_size": 2}}
    )
    single = kind_of("pytorch.mlp").config.model_validate({"input_size": 4, "output_size": 2})
    gpu4 = Capacity(memory_budget_bytes=1, gpu_memory_bytes=(1, 1, 1, 1))
    assert gpu4.gpus_held(config) == 2 and gpu4.gpus_held(single) == 1
    assert Capacity(memory_budget_bytes=1).gpus_held(config) == 0


@pytest.mark.parametrize(
    "bad",
    [{"wall_s": -1.0}, {"cpu_s": math.inf}, {"gpus": -1}, {"attempt": 0}, {"gpus": 1.5},
     {"wall_s": 2e9}, {"by": "x"}],
)  # fmt: skip
def test_a_usage_no_clock_measures_is_refused(bad: dict[str, object]) -> None:
    with pytest.raises(ValidationError):
        AttemptUsage.model_validate({"attempt": 1, "wall_s": 1.0, "cpu_s": 1.0, **bad})


def test_end_events_carry_usage_and_ends_from_before_accounting_still_decode() -> None:
    old = JobCompleted.model_validate_json('{"job_id": "j1", "model_id": "j1", "attempt": 1}')
    assert old.usage == []
    used = [AttemptUsage(attempt=1, wall_s=2.0, cpu_s=1.0), AttemptUsage(attempt=2, wall_s=3.0,
            gpus=1, cpu_s=2.5)]  # fmt: skip
    for event in (
        JobCompleted(job_id="j1", model_id="j1", attempt=2, usage=used),
        JobFailed(job_id="j1", reason="r", error_type="E", attempt=2, usage=used),
        JobCancelled(job_id="j1", attempt=2, usage=used),
        JobPreempted(job_id="j1", reason="stop", attempt=2, usage=used),
    ):
        assert type(event).model_validate_json(event.model_dump_json()).usage == used
