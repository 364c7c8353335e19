"""The trainer's re-check of the typed validated job (services/admission.py, issue 17 item 6):
every field a submission has goes through the validator's checks again, the tenant's ceiling
too, and the job must say what validating it gives and come on its home topic."""

from __future__ import annotations

from typing import Any

import pytest

from sparktrainer.contracts.caps import Capacity
from sparktrainer.contracts.events import JobValidated
from sparktrainer.contracts.jobspec import JobRequest
from sparktrainer.contracts.tenants import Tenant, Tenants
from sparktrainer.contracts.topics import JOBS_VALIDATED, validated_topic
from sparktrainer.services.admission import SUBMISSION_FIELDS, job_body, refusals
from sparktrainer.settings import Limits, Settings

ROOMY = Capacity(10**13, (), 1000)
TEAMS = Tenants(tenants=(Tenant(name="default", max_priority="high"),
                         Tenant(name="vision", max_priority="normal")))  # fmt: skip
SETTINGS = Settings(limits=Limits(model_name_chars=12, gpus=2))


def job(**fields: Any) -> JobValidated:
    base: dict[str, Any] = {"job_id": "j1", "name": "mlp", "type": "train", "framework": "pytorch",
                            "config_kind": "pytorch.mlp",
                            "config": {"input_size": 4, "output_size": 2}}  # fmt: skip
    return JobValidated.model_validate({**base, **fields})


def refused(j: JobValidated, topic: str | None = None) -> list[str]:
    return refusals(j, None, SETTINGS, ROOMY, topic=topic or j.home_topic(), tenants=TEAMS)


def test_the_submission_a_job_stands_for_has_every_field_a_submission_has() -> None:
    assert set(JobRequest.model_fields) <= set(JobValidated.model_fields)  # none can be dropped
    j = job(priority="low", resources={"gpus": 1}, resource_class="gpu", register_as="digits",
            sweep_id="sw1", trial=3, job_id="sw1-t003", tags=["a"])  # fmt: skip
    body = job_body(j)
    assert set(body) == SUBMISSION_FIELDS
    assert (body["priority"], body["resources"]["gpus"], body["register_as"], body["sweep_id"],
            body["trial"]) == ("low", 1, "digits", "sw1", 3)  # fmt: skip


def test_a_good_job_on_its_home_topic_is_admitted() -> None:
    assert refused(job()) == []
    assert refused(job(priority="high"), validated_topic("cpu", "high")) == []
    assert refused(job(tenant="vision", priority="low")) == []


@pytest.mark.parametrize(
    ("fields", "needle"),
    [
        ({"resources": {"gpus": 8}, "resource_class": "gpu"}, "SPARKTRAINER_MAX_GPUS"),
        ({"register_as": "a-name-far-too-long"}, "register_as"),
        ({"sweep_id": "sw1"}, "sweep_id and trial go together"),
        ({"sweep_id": "sw1", "trial": 2}, "is not trial 2's id of sweep 'sw1' (sw1-t002)"),
        ({"resources": {"gpus": 1}}, "resource_class 'cpu' does not match its resources"),
        ({"tenant": "vision", "priority": "high"}, "above what tenant 'vision' may ask for"),
        ({"tenant": "nobody"}, "tenant 'nobody' is not in this trainer's tenants file"),
    ],
)
def test_a_forged_validated_job_is_refused_with_a_reason(
    fields: dict[str, Any], needle: str
) -> None:
    problems = refused(job(**fields))
    assert any(needle in p for p in problems), problems


def test_a_job_that_came_on_another_topic_than_its_home_is_refused() -> None:
    high = job(priority="high")  # written by hand to the plain topic, to jump the queue
    [problem] = refused(high, JOBS_VALIDATED)
    assert problem == (
        f"the job came on {JOBS_VALIDATED}, not on its home topic "
        f"{validated_topic('cpu', 'high')} (class 'cpu', priority 'high')"
    )
