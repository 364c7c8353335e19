"""A job's stop check: a cancel on its flag, its own time limit, and the deployment's cap."""

from __future__ import annotations

import time

import pytest

from sparktrainer.errors import JobCancelledError, JobTimeout
from sparktrainer.training.job.spec import JobSpec
from sparktrainer.training.job.stopping import StopCheck, StopFlag
from tests.unit.training.jobkit import make_job

MLP = {"input_size": 4, "output_size": 2, "hidden_layers": [8]}


def test_a_running_job_goes_on_until_its_flag_is_set() -> None:
    flag = StopFlag()
    check = StopCheck(flag, limit_s=60.0)
    check.check()
    flag.set("cancel", "user asked")
    with pytest.raises(JobCancelledError, match="user asked"):
        check.check()


def test_past_its_time_limit_a_job_stops_and_says_why() -> None:
    flag = StopFlag()
    check = StopCheck(flag, limit_s=1.0, started_monotonic=time.monotonic() - 5.0)
    with pytest.raises(JobTimeout, match="time limit of 1 s"):
        check.check()
    assert flag.kind == "timeout"  # the flag remembers: every later check stops too
    with pytest.raises(JobTimeout):
        StopCheck(flag, limit_s=0.0).check()


def test_a_limit_of_zero_means_no_limit() -> None:
    StopCheck(StopFlag(), limit_s=0.0, started_monotonic=time.monotonic() - 1e6).check()


@pytest.mark.parametrize(
    ("own", "cap", "limit"), [(None, 60.0, 60.0), (5, 60.0, 5.0), (90, 60.0, 60.0)]
)
def test_the_job_limit_is_its_own_capped_by_the_deployment(own, cap, limit) -> None:
    config = {**MLP, **({"max_runtime_s": own} if own is not None else {})}
    spec = JobSpec(job=make_job("limit", "pytorch.mlp", config))
    assert spec.config_max_runtime_s(cap) == limit
