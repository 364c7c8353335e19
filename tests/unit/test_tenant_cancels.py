"""A cancel asks for a tenant (stamped by its trusted writer); the trainer and the sweep
controller ignore, and count, a cancel whose tenant is not the job's (issue 17 item 4)."""

from __future__ import annotations

import asyncio
from datetime import timedelta

from sparktrainer.contracts.event_base import now
from sparktrainer.contracts.events import CancelRequested, JobValidated
from sparktrainer.contracts.schedule_events import SweepValidated
from sparktrainer.contracts.sweeps import SweepConfig
from sparktrainer.storage.outcomes import StoredOutcome, claim, write_outcome
from sparktrainer.sweeps.book import SweepBook
from sparktrainer.telemetry.prometheus import IgnoredCancels
from sparktrainer.training.ends import answer_cancel
from sparktrainer.training.runner import CancelBook
from tests.tenants_kit import DictStore

MLP = {"architecture": "custom", "input_size": 4, "output_size": 2}
HOUR_AGO = now() - timedelta(hours=1)


def job(tenant: str) -> JobValidated:
    return JobValidated(job_id="j1", name="j", type="train", framework="pytorch",
                        config_kind="pytorch.mlp", config=MLP, tenant=tenant,
                        validated_at=HOUR_AGO)  # fmt: skip


def cancel(job_id: str, tenant: str) -> CancelRequested:
    return CancelRequested(job_id=job_id, tenant=tenant)  # requested after the job came


def test_the_trainer_honours_only_the_jobs_own_tenants_cancel() -> None:
    book = CancelBook()
    book.request(cancel("j1", "speech"))
    assert book.for_job(job("vision")) is None
    assert book.for_job(job("vision")) is None  # asked twice, counted once
    assert len(book.foreign) == 1
    [metric] = IgnoredCancels(lambda: len(book.foreign)).collect()  # what Prometheus scrapes
    assert (metric.name, metric.samples[0].value) == ("sparktrainer_cancels_ignored", 1)
    book.request(cancel("j1", "vision"))
    assert book.for_job(job("vision")) is not None


def test_an_ended_jobs_cancel_is_answered_only_to_its_tenant() -> None:
    store = DictStore()
    claim(store, "j1", "f" * 64, tenant="vision")
    write_outcome(store, "j1", StoredOutcome(status="completed", events=[]))
    assert asyncio.run(answer_cancel(cancel("j1", "speech"), store)) == []
    [answer] = asyncio.run(answer_cancel(cancel("j1", "vision"), store))
    assert answer.topic == "sparktrainer.jobs.lifecycle"


def test_the_sweep_controller_ignores_another_tenants_cancel_of_a_sweep() -> None:
    config = SweepConfig.model_validate({
        "base": {"type": "train", "framework": "pytorch", "config": MLP},
        "space": {"learning_rate": {"type": "choice", "values": [0.1, 0.01]}}, "max_trials": 2,
    })  # fmt: skip
    book = SweepBook()
    book.fold(SweepValidated(sweep_id="sw", name="sw", framework="pytorch", config=config,
                             trials=2, tenant="speech"))  # fmt: skip
    assert book.fold(cancel("sw", "vision")) is None
    assert book.sweeps["sw"].cancel is None and len(book.foreign_cancels) == 1
    assert book.fold(cancel("sw", "speech")) == "sw"
    assert book.sweeps["sw"].cancel == "cancel requested"
