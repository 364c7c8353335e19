"""The validator refuses a ``register_as`` naming another tenant's model name (issue 17 item 2).

The registry view is a read model folded in memory (``ReadModelDirectory``, the protocol the
validator's own ``RegistryDirectory`` implements): ``vision`` owns ``digits``.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from sparktrainer.contracts.events import Artifact, JobRejected, JobValidated, ModelRegistered
from sparktrainer.contracts.records import Received
from sparktrainer.contracts.schedule_events import SweepValidated
from sparktrainer.contracts.tenants import Tenants, load_tenants
from sparktrainer.contracts.topics import MODELS_REGISTERED, submission_topic
from sparktrainer.registry import store
from sparktrainer.registry.directory import ReadModelDirectory as Directory
from sparktrainer.registry.fold import apply
from sparktrainer.settings import Limits
from sparktrainer.validation.door import Verdict, decide
from tests.tenants_kit import write_two_teams

JOB = {
    "type": "train", "framework": "pytorch", "register_as": "digits",
    "config": {"architecture": "custom", "input_size": 64, "output_size": 10, "epochs": 1,
               "data": {"source": "digits"}},
}  # fmt: skip


@pytest.fixture
def tenants(tmp_path: Path) -> Tenants:
    return load_tenants(write_two_teams(tmp_path).path)


@pytest.fixture
def directory() -> Directory:
    conn = store.connect(":memory:")
    model = ModelRegistered(
        model_id="v1", job_id="v1", name="v1", framework="pytorch", tenant="vision",
        architecture={"architecture": "custom"}, register_as="digits", storage_prefix="models/v1/",
        artifacts=[Artifact(path="model.pth", size_bytes=1, sha256="ab" * 32)],
    )  # fmt: skip
    apply(conn, MODELS_REGISTERED, 0, 0, model)
    return Directory(lambda: conn)


def judge(tenant: str, body: dict[str, Any], tenants: Tenants, directory: Directory) -> Verdict:
    rec = Received(submission_topic(tenant), 0, 0, None, json.dumps(body).encode(), (), 0)
    return decide(rec, None, Limits(), directory, tenants=tenants)


def test_only_the_owner_registers_another_version(tenants: Tenants, directory: Directory) -> None:
    assert isinstance(judge("vision", JOB, tenants, directory), JobValidated)
    refused = judge("speech", JOB, tenants, directory)
    assert isinstance(refused, JobRejected) and refused.tenant == "speech"
    assert refused.errors == [
        "register_as 'digits' is a model name of tenant 'vision', not of 'speech': only the "
        "tenant that registered a name's first version adds versions to it; register under a "
        "name of your own (you may still fine-tune from its models)"
    ]
    fresh = judge("speech", {**JOB, "register_as": "speech-digits"}, tenants, directory)
    assert isinstance(fresh, JobValidated) and fresh.register_as == "speech-digits"


def test_a_sweep_whose_base_registers_as_anothers_name_is_refused(
    tenants: Tenants, directory: Directory
) -> None:
    base = {k: v for k, v in JOB.items() if k != "register_as"}
    space = {"learning_rate": {"type": "choice", "values": [0.01, 0.1]}}
    sweep = {"type": "sweep", "framework": "pytorch",
             "config": {"base": {**base, "register_as": "digits"}, "space": space,
                        "max_trials": 2}}  # fmt: skip
    refused = judge("speech", sweep, tenants, directory)
    assert isinstance(refused, JobRejected)
    assert len(refused.errors) == 1 and "tenant 'vision', not of 'speech'" in refused.errors[0]
    assert isinstance(judge("vision", sweep, tenants, directory), SweepValidated)
