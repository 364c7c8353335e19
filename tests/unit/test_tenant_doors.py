"""Who asks, at the door: the tenant is the door's, its priority ceiling holds, ids are claimed
with their tenant, and a sweep claims its id as a job does (issue 17 items 1 and 2)."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from sparktrainer.contracts.envelope import encode
from sparktrainer.contracts.events import JobRejected, JobValidated
from sparktrainer.contracts.jobspec import JobRequest
from sparktrainer.contracts.records import Received
from sparktrainer.contracts.schedule_events import SweepValidated, TrialRejected, TrialSubmission
from sparktrainer.contracts.sweeps import trial_job
from sparktrainer.contracts.tenants import Tenants, load_tenants
from sparktrainer.contracts.topics import JOBS_SUBMITTED, SWEEP_TRIALS, submission_topic
from sparktrainer.settings import Limits
from sparktrainer.storage.outcomes import claimed_by
from sparktrainer.validation.door import decide
from tests.tenants_kit import DictStore, write_two_teams

JOB = {
    "type": "train",
    "framework": "pytorch",
    "config": {"architecture": "custom", "input_size": 64, "output_size": 10, "epochs": 1,
               "data": {"source": "digits"}},
}  # fmt: skip
SPACE = {"learning_rate": {"type": "choice", "values": [0.01, 0.1]}}


@pytest.fixture
def tenants(tmp_path: Path) -> Tenants:
    return load_tenants(write_two_teams(tmp_path).path)


def on(topic: str, body: dict[str, Any], offset: int = 0) -> Received:
    return Received(topic, 0, offset, None, json.dumps(body).encode(), (), 1_700_000_000_000)


def sweep(job_id: str, **fields: Any) -> dict[str, Any]:
    config = {"base": JOB, "space": SPACE, "max_trials": 2, "max_concurrent": 1}
    return {"job_id": job_id, "type": "sweep", "framework": "pytorch", "config": config, **fields}


def test_the_tenant_is_the_doors_never_the_bodys(tenants: Tenants) -> None:
    vision = decide(on(submission_topic("vision"), {**JOB, "job_id": "v1"}), None, Limits(),
                    tenants=tenants)  # fmt: skip
    plain = decide(on(JOBS_SUBMITTED, {**JOB, "job_id": "d1"}), None, Limits(), tenants=tenants)
    assert isinstance(vision, JobValidated) and vision.tenant == "vision"
    assert isinstance(plain, JobValidated) and plain.tenant == "default"
    claimed = decide(on(submission_topic("vision"), {**JOB, "tenant": "speech"}), None, Limits(),
                     tenants=tenants)  # fmt: skip
    assert isinstance(claimed, JobRejected) and claimed.tenant == "vision"
    assert claimed.errors == ["Unknown field 'tenant': remove it or check its spelling"]
    swept = decide(on(submission_topic("speech"), sweep("sw-s")), None, Limits(), tenants=tenants)
    assert isinstance(swept, SweepValidated) and swept.tenant == "speech"


def test_a_door_of_no_configured_tenant_is_refused(tenants: Tenants) -> None:
    verdict = decide(on(submission_topic("ghost"), JOB), None, Limits(), tenants=tenants)
    assert isinstance(verdict, JobRejected)
    assert verdict.errors == [
        "tenant 'ghost' (from the topic sparktrainer.tenants.ghost.jobs.submitted) is not in the "
        "tenants file (SPARKTRAINER_TENANTS_FILE): ask an operator to add it"
    ]
    other = decide(on("sparktrainer.jobs.lifecycle", JOB), None, Limits(), tenants=tenants)
    assert isinstance(other, JobRejected) and "is not a submission door" in other.errors[0]


def test_a_priority_above_the_tenants_ceiling_is_rejected(tenants: Tenants) -> None:
    door = submission_topic("vision")
    high = decide(on(door, {**JOB, "priority": "high"}), None, Limits(), tenants=tenants)
    assert isinstance(high, JobRejected)
    assert high.errors == [
        "priority 'high' is above what tenant 'vision' may ask for (max_priority 'normal', in "
        "the tenants file): ask for 'normal' or lower"
    ]
    base = {**JOB, "priority": "high"}
    swept = decide(on(door, {**sweep("sw-h"), "config": {**sweep("x")["config"], "base": base}}),
                   None, Limits(), tenants=tenants)  # fmt: skip
    assert isinstance(swept, JobRejected)
    assert [e.split(" is above")[0] for e in swept.errors] == ["config.base.priority 'high'"]
    ok = decide(on(door, {**JOB, "priority": "low"}), None, Limits(), tenants=tenants)
    assert isinstance(ok, JobValidated)
    # without a tenants file the default tenant may ask for anything, as before tenants
    assert isinstance(decide(on(JOBS_SUBMITTED, {**JOB, "priority": "high"}), None, Limits()),
                      JobValidated)  # fmt: skip


def test_claims_record_the_tenant_and_a_sweep_claims_its_id_as_a_job_does(
    tenants: Tenants,
) -> None:
    store = DictStore()
    vision, speech = submission_topic("vision"), submission_topic("speech")
    job = decide(on(vision, {**JOB, "job_id": "shared"}, 1), store, Limits(), tenants=tenants)
    assert isinstance(job, JobValidated)
    held = claimed_by(store, "shared")
    assert held is not None and (held.tenant, held.kind) == ("vision", "job")
    # another team's sweep under the finished job's id: rejected under an id of its own
    taken = decide(on(speech, sweep("shared"), 2), store, Limits(), tenants=tenants)
    assert isinstance(taken, JobRejected) and taken.job_id != "shared"
    assert "already taken" in taken.errors[0] and taken.tenant == "speech"
    # the same job on another team's door is another job (its tenant is part of what it is)
    again = decide(on(speech, {**JOB, "job_id": "shared"}, 3), store, Limits(), tenants=tenants)
    assert isinstance(again, JobRejected) and again.job_id != "shared"
    # a sweep claims its own id: a redelivery stays the sweep, a job under it is refused
    first = decide(on(speech, sweep("sw-1"), 4), store, Limits(), tenants=tenants)
    redelivered = decide(on(speech, sweep("sw-1"), 4), store, Limits(), tenants=tenants)
    assert isinstance(first, SweepValidated) and isinstance(redelivered, SweepValidated)
    held = claimed_by(store, "sw-1")
    assert held is not None and (held.tenant, held.kind) == ("speech", "sweep")
    squat = decide(on(vision, {**JOB, "job_id": "sw-1"}, 5), store, Limits(), tenants=tenants)
    assert isinstance(squat, JobRejected) and squat.job_id != "sw-1"
    assert claimed_by(store, "sw-1") == held  # the owner's claim is untouched


def trial_record(sweep_id: str, n: int, tenant: str, offset: int = 0) -> Received:
    job = trial_job(sweep_id, "sw", JOB, n, {"learning_rate": 0.01})
    sub = TrialSubmission(sweep_id=sweep_id, trial=n, tenant=tenant,
                          job=JobRequest.model_validate(job))  # fmt: skip
    out = encode(sub, "sparktrainer/sweep-controller")
    return Received(out.topic, 0, offset, out.key, out.value, tuple(out.headers), 1)


def test_sweep_id_and_trial_come_only_from_the_controllers_topic(tenants: Tenants) -> None:
    forged = {**JOB, "job_id": "sw-t001", "sweep_id": "sw", "trial": 1}
    verdict = decide(on(submission_topic("vision"), forged), None, Limits(), tenants=tenants)
    assert isinstance(verdict, JobRejected)
    assert verdict.errors == [
        "sweep_id and trial may not be set on a submission: only the sweep controller submits "
        "a sweep's trials (submit a sweep with type 'sweep', or remove these fields)"
    ]
    trial = decide(trial_record("sw", 1, "speech"), None, Limits(), tenants=tenants)
    assert isinstance(trial, JobValidated)
    assert (trial.job_id, trial.sweep_id, trial.trial, trial.tenant) == ("sw-t001", "sw", 1,
                                                                         "speech")  # fmt: skip
    bare = Received(SWEEP_TRIALS, 0, 9, b"sw-t002", json.dumps(forged).encode(), (), 1)
    refused = decide(bare, None, Limits(), tenants=tenants)
    assert isinstance(refused, JobRejected) and refused.errors[0].startswith("Not a trial")


def test_a_squatted_trial_id_is_a_rejected_trial_for_its_sweep(tenants: Tenants) -> None:
    store = DictStore()
    sweep_rec = on(submission_topic("speech"), sweep("sw"), 1)
    assert isinstance(decide(sweep_rec, store, Limits(), tenants=tenants), SweepValidated)
    squat = decide(on(submission_topic("vision"), {**JOB, "job_id": "sw-t001"}, 2), store,
                   Limits(), tenants=tenants)  # fmt: skip
    assert isinstance(squat, JobValidated)  # a plain id, free when it came
    verdict = decide(trial_record("sw", 1, "speech"), store, Limits(), tenants=tenants)
    assert isinstance(verdict, TrialRejected)
    assert (verdict.sweep_id, verdict.trial, verdict.job_id) == ("sw", 1, "sw-t001")
    assert "already taken" in verdict.errors[0]
    assert claimed_by(store, "sw-t001").tenant == "vision"  # the squatter keeps what it took
    # a trial stamped with another tenant than its sweep's owner is not submitted
    stolen = decide(trial_record("sw", 2, "vision"), store, Limits(), tenants=tenants)
    assert isinstance(stolen, JobRejected) and stolen.job_id == "sw-t002"
    assert stolen.errors == [
        "sw is not a sweep of tenant 'vision' (its id is held by a sweep of tenant 'speech'): "
        "the trial is not submitted"
    ]


def test_an_unreadable_record_keyed_with_a_taken_id_is_answered_under_its_own(
    tenants: Tenants,
) -> None:
    """A record keyed X that cannot be read answers under X only while X is nobody's: once a
    job holds X, such a record (a garbled resend, a hostile one) gets an id of its own, as any
    newcomer to a taken id; otherwise a follower of X would read that rejection as X's end."""
    store = DictStore()
    keyed = lambda value, offset: Received(JOBS_SUBMITTED, 0, offset, b"taken", value, (), 1)  # noqa: E731
    early = decide(keyed(b"{not json", 1), store, Limits(), tenants=tenants)
    assert isinstance(early, JobRejected) and early.job_id == "taken"  # X is nobody's yet
    job = decide(keyed(json.dumps({**JOB, "job_id": "taken"}).encode(), 2), store, Limits())
    assert isinstance(job, JobValidated) and job.job_id == "taken"
    for value in (b"{not json", b"x" * (Limits().submission_bytes + 1)):
        late = decide(keyed(value, 3), store, Limits(), tenants=tenants)
        assert isinstance(late, JobRejected) and late.job_id != "taken", late
        assert "already taken" in late.errors[0] and len(late.errors) == 2, late.errors
