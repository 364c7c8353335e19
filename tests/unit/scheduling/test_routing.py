"""Routing: a job's resources pick its class, its class and priority pick its topic."""

from __future__ import annotations

import pytest

from sparktrainer.contracts import topics as t
from sparktrainer.contracts.envelope import encode
from sparktrainer.contracts.records import Received
from sparktrainer.contracts.scheduling import (
    Resources,
    classes_for_devices,
    effective_level,
    route,
)
from sparktrainer.errors import ConfigurationError
from sparktrainer.scheduling.serving import served_classes
from sparktrainer.settings import Limits, Settings
from sparktrainer.validation.door import decide

GIB = 2**30
MLP = {"architecture": "custom", "input_size": 64, "output_size": 10, "hidden_layers": [16]}


def job(**fields: object) -> dict[str, object]:
    return {"job_id": "j1", "type": "train", "framework": "pytorch", "config": MLP, **fields}


def record(body: dict[str, object]) -> Received:
    import json

    return Received(t.JOBS_SUBMITTED, 0, 7, None, json.dumps(body).encode(), (), 1)


@pytest.mark.parametrize(
    ("needs", "expected"),
    [
        ({}, "cpu"),
        ({"allow_cpu": False}, "gpu"),
        ({"gpus": 1}, "gpu"),
        ({"gpus": 1, "allow_cpu": True}, "cpu"),
        ({"gpus": 1, "min_gpu_memory_gib": 24}, "gpu-large"),
        ({"gpus": 1, "min_gpu_memory_gib": 40}, "gpu-large"),
        ({"gpus": 3}, "multi-gpu"),
        ({"gpus": 4}, "multi-gpu"),
        ({"gpus": 5}, None),
        ({"gpus": 2, "min_gpu_memory_gib": 40}, None),
        ({"gpus": 1, "min_gpu_memory_gib": 80}, None),
    ],
)
def test_a_job_goes_to_the_cheapest_class_that_gives_what_it_needs(needs, expected) -> None:
    found = route(Resources.model_validate(needs))
    assert (found.name if found else None) == expected


def test_each_class_and_priority_has_a_topic_and_the_default_keeps_the_old_name() -> None:
    assert t.validated_topic("cpu", "normal") == t.JOBS_VALIDATED == "sparktrainer.jobs.validated"
    assert t.validated_topic("gpu", "high") == "sparktrainer.jobs.validated.gpu.high"
    assert len(t.VALIDATED_TOPICS) == 12 == len(set(t.VALIDATED_TOPICS))
    assert set(t.VALIDATED_TOPICS) <= set(t.ALL_TOPICS)
    assert t.class_topics("gpu") == tuple(f"sparktrainer.jobs.validated.gpu.{p}"
                                          for p in ("high", "normal", "low"))  # fmt: skip
    assert all(topic in t.DESCRIPTIONS for topic in t.ALL_TOPICS)


def test_the_validator_sends_each_job_to_its_route() -> None:
    verdict = decide(record(job(priority="high", resources={"gpus": 1})), None, Limits())
    assert verdict.resource_class == "gpu" and verdict.priority == "high"
    assert encode(verdict, "test").topic == "sparktrainer.jobs.validated.gpu.high"
    default = decide(record(job()), None, Limits())
    assert encode(default, "test").topic == t.JOBS_VALIDATED


def test_resources_nobody_gives_or_beyond_a_cap_are_rejected_with_the_reason() -> None:
    nowhere = decide(record(job(resources={"gpus": 2, "min_gpu_memory_gib": 40})), None, Limits())
    assert type(nowhere).__name__ == "JobRejected"
    assert any("no resource class gives" in e and "multi-gpu" in e for e in nowhere.errors)
    capped = decide(record(job(resources={"gpus": 16})), None, Limits())
    assert any("SPARKTRAINER_MAX_GPUS" in e for e in capped.errors), capped.errors
    bad = decide(record(job(priority="urgent")), None, Limits())
    assert any("priority" in e for e in bad.errors), bad.errors


def test_a_trainer_serves_what_its_gpus_give_or_what_it_is_told() -> None:
    assert classes_for_devices([], takes_cpu_jobs=False) == ("cpu",)
    assert classes_for_devices([16 * GIB], takes_cpu_jobs=True) == ("cpu", "gpu")
    assert classes_for_devices([80 * GIB], takes_cpu_jobs=False) == ("gpu", "gpu-large")
    four = classes_for_devices([80 * GIB, 80 * GIB, 40 * GIB, 40 * GIB], takes_cpu_jobs=False)
    assert four == ("gpu", "gpu-large", "multi-gpu")
    told = Settings(trainer_classes="gpu-large, gpu,gpu")
    assert served_classes(told, []) == ("gpu-large", "gpu")
    with pytest.raises(ConfigurationError, match="tpu"):
        served_classes(Settings(trainer_classes="gpu,tpu"), [])


def test_aging_raises_a_waiting_job_one_level_per_interval_up_to_the_top() -> None:
    assert [effective_level("low", s, 10.0) for s in (0, 9.9, 10, 19.9, 20, 1e9)] == [
        0, 0, 1, 1, 2, 2,
    ]  # fmt: skip
    assert effective_level("high", 0, 10.0) == 2
    assert effective_level("low", 1e9, 0.0) == 0  # aging off
    assert effective_level("low", -5, 10.0) == 0  # a clock ahead never ages backwards
    assert effective_level("high", 0, 10.0, enabled=False) == 0  # priorities off: all equal
