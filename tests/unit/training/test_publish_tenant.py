"""The model a job publishes is its tenant's: the registration and metadata.json say so."""

from __future__ import annotations

import json
from pathlib import Path

from sparktrainer.contracts.events import JobValidated
from sparktrainer.training.job.publish import ModelPublisher
from sparktrainer.training.job.spec import JobSpec
from tests.tenants_kit import DictStore


class FileStore(DictStore):
    """DictStore that also takes files, as the publisher uploads them."""

    def put_file(self, key: str, path: Path, sha256: str | None = None) -> None:
        self.objects[key] = path.read_bytes()


def test_the_registration_carries_the_jobs_tenant(tmp_path: Path) -> None:
    job = JobValidated(job_id="j1", name="n", type="train", framework="pytorch",
                       config_kind="pytorch.mlp", config={"input_size": 4, "output_size": 2},
                       register_as="digits", tenant="vision")  # fmt: skip
    weights = tmp_path / "model.pth"
    weights.write_bytes(b"weights")
    store = FileStore()
    publisher = ModelPublisher(JobSpec(job=job), store, tmp_path, check_stop=lambda: None,
                               wait_uploads=lambda: None)  # fmt: skip
    event = publisher.publish({"model.pth": weights}, architecture={}, metrics={})
    assert (event.tenant, event.register_as) == ("vision", "digits")
    assert json.loads(store.objects["models/j1/metadata.json"])["tenant"] == "vision"
