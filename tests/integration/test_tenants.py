"""Many teams, one runner (issue 17), on the real broker and S3: one team attacks the other's work.

Three tenants: two teams (a victim and a rival, fresh names each run) and the default. The
victim trains two models, one registered under a name with an alias, and runs a sweep. The rival
then tries every attack issue 17 found: through its own door, with its own API token, and as
records forged onto the topics only trusted services write (what a leaked service credential
could send). Afterwards the victim's files (sha256), its name's versions, its alias, its sweep's
result and its jobs' outcomes are as they were; each attempt was refused with a reason that
names it, or skipped and counted; the janitor still purges the owner's own deletion and the
sweep controller finished the sweep. The GPU/CPU-seconds of each team's jobs add up in the API
and in the CLI.
"""

from __future__ import annotations

import hashlib
import json
import uuid
from collections.abc import AsyncIterator, Callable
from datetime import UTC, datetime
from typing import Any

import pytest

from sparktrainer.cli.main import main as cli
from sparktrainer.contracts.envelope import encode
from sparktrainer.contracts.event_base import Event
from sparktrainer.contracts.events import (
    CancelRequested,
    JobCompleted,
    JobRejected,
    JobStarted,
    JobValidated,
    ModelRegistered,
)
from sparktrainer.contracts.model_events import ModelDeleted
from sparktrainer.contracts.schedule_events import (
    SweepEnded,
    SweepValidated,
    TrainerHeartbeat,
    TrialPlanned,
    TrialRejected,
)
from sparktrainer.contracts.topics import (
    JOBS_LIFECYCLE,
    JOBS_REJECTED,
    JOBS_VALIDATED,
    MODELS_REGISTERED,
    SWEEPS,
)
from sparktrainer.storage.s3 import ObjectStore
from tests.integration.model_registry_kit import RegistryStack, ended, job, registry_stack, until
from tests.integration.schedule_kit import digits_job
from tests.integration.tap import Tap, produce
from tests.tenants_kit import TwoTeams, write_two_teams

pytestmark = pytest.mark.integration
TRAIN = "Initial Model Training"
GRACE_S = 2.0  # the janitor's grace: short, so the owner's own deletion is purged in the test


@pytest.fixture(scope="module")
def teams(tmp_path_factory) -> TwoTeams:
    tag = uuid.uuid4().hex[:6]
    folder = tmp_path_factory.mktemp("tenants")
    return write_two_teams(folder, teams=(f"victim{tag}", f"rival{tag}"))


@pytest.fixture(scope="module")
async def rs(stack, teams, tmp_path_factory) -> AsyncIterator[RegistryStack]:
    home = tmp_path_factory.mktemp("tenants-home")
    async with registry_stack(
        stack, home, sweeps=True, tenants_file=teams.path, model_delete_grace_s=GRACE_S
    ) as services:
        yield services


async def submit(rs: RegistryStack, teams: TwoTeams, tenant: str, body: dict[str, Any]) -> None:
    """Write a submission on the tenant's own door (the topic its Kafka user may write)."""
    await produce(rs.producer, teams.door(tenant), body, key=str(body["job_id"]).encode())


async def forge(
    rs: RegistryStack, event: Event, edit: Callable[[dict], None] | None = None
) -> None:
    """Write an event straight onto its topic, as a holder of a trusted role's credential could;
    ``edit`` changes its JSON first (to send what no model of ours would encode)."""
    record = encode(event, "rogue")
    value = record.value
    if edit is not None:
        data = json.loads(value)
        edit(data)
        value = json.dumps(data).encode()
    await produce(rs.producer, record.topic, value, record.key, record.headers)


def files_of(store: ObjectStore, model_id: str) -> dict[str, str]:
    """Every file under the model's folder in S3, with its sha256."""
    prefix = f"models/{model_id}/"
    return {
        key[len(prefix) :]: hashlib.sha256(store.get_bytes(key)).hexdigest()
        for key in store.list(prefix)
    }


async def registry_of(rs: RegistryStack, name: str) -> dict[str, Any]:
    """The name's versions, owner and prod alias target, as the API answers them."""
    found = (await rs.api.get(f"/api/registered-models/{name}")).json()
    prod = (await rs.api.get(f"/api/models/{name}@prod")).json()
    return {
        "owner": found["tenant"],
        "versions": [(v["version"], v["model_id"]) for v in found["versions"]],
        "prod": prod["model_id"],
    }


def a_sweep(sweep_id: str, name: str = "lr sweep") -> dict[str, Any]:
    base = digits_job("trial", gpus=0)
    base.pop("job_id")
    return {
        "job_id": sweep_id,
        "name": name,
        "type": "sweep",
        "framework": "pytorch",
        "config": {
            "base": base,
            "space": {"learning_rate": {"type": "choice", "values": [0.02, 0.01, 0.005]}},
            "sampler": "grid",
            "max_trials": 3,
            "max_concurrent": 1,
            "metric": "val_loss",
        },
    }


async def test_a_rival_team_attacks_every_way_and_the_victims_work_is_unchanged(
    rs: RegistryStack, teams: TwoTeams, capsys
) -> None:
    victim, rival = teams.tokens
    name = f"shared-{uuid.uuid4().hex[:8]}"
    store = ObjectStore.from_settings(rs.settings)
    topics = (JOBS_VALIDATED, JOBS_REJECTED, JOBS_LIFECYCLE, MODELS_REGISTERED, SWEEPS)
    async with Tap(rs.settings, *topics) as tap:
        # -- the victim's work: a model under a name with an alias, a second model, a sweep
        named, spare = job(TRAIN, register_as=name), job(TRAIN)
        for body in (named, spare):
            await submit(rs, teams, victim, body)
        for body in (named, spare):
            [end] = await tap.wait_for(ended(body["job_id"]), 1, timeout_s=240)
            assert isinstance(end, JobCompleted) and end.job_id == body["job_id"], end
        r = await rs.api.put(f"/api/registered-models/{name}/aliases/prod",
                             json={"version": 1}, headers=teams.auth(victim))  # fmt: skip
        assert r.status_code == 202, r.text
        await until(rs.api, f"/api/models/{name}@prod", lambda r: r.status_code == 200)
        files = {m: files_of(store, m) for m in (named["job_id"], spare["job_id"])}
        assert "model.pth" in files[named["job_id"]]
        registry = await registry_of(rs, name)
        assert registry == {"owner": victim, "versions": [(1, named["job_id"])],
                            "prod": named["job_id"]}  # fmt: skip

        # The rival takes the sweep's first trial id before the sweep exists (ids are
        # predictable), then the victim submits the sweep.
        sweep_id = f"sweep-{uuid.uuid4().hex[:8]}"
        squat = {**digits_job("squat", gpus=0), "job_id": f"{sweep_id}-t001"}
        await submit(rs, teams, rival, squat)
        await tap.wait_for(
            lambda e: isinstance(e, JobValidated) and e.job_id == squat["job_id"], 1, 60
        )
        await submit(rs, teams, victim, a_sweep(sweep_id))
        await tap.wait_for(
            lambda e: isinstance(e, SweepValidated) and e.sweep_id == sweep_id, 1, 60
        )

        # -- the rival, through its own door: each submission is rejected, naming why
        attacks = {
            "a sweep under the victim's finished job's id": (
                {**a_sweep(named["job_id"], "a sweep on a job's id")},
                "already taken",
            ),
            "a job under the victim's running sweep's id": (
                {
                    **digits_job("on-sweep-id", gpus=0),
                    "job_id": sweep_id,
                    "name": "a job on a sweep's id",
                },
                "already taken",
            ),
            "a job claiming to be the sweep's trial": (
                {**digits_job("trial-claim", gpus=0), "sweep_id": sweep_id, "trial": 2},
                "only the sweep controller",
            ),
            "a new version of the victim's name": (
                {**job(TRAIN, register_as=name), "name": "a version of another's name"},
                f"model name of tenant '{victim}'",
            ),
            "a priority above the rival's ceiling": (
                digits_job("high", gpus=0, priority="high"),
                "max_priority 'normal'",
            ),
        }
        for body, _ in attacks.values():
            await submit(rs, teams, rival, body)
        names = {body["name"] for body, _ in attacks.values()}
        rejections = {
            e.name: e
            for e in await tap.wait_for(
                lambda e: isinstance(e, JobRejected) and e.name in names, len(attacks), 60
            )
        }
        for what, (body, reason) in attacks.items():
            rejected = rejections[body["name"]]
            assert rejected.tenant == rival, what
            assert any(reason in error for error in rejected.errors), (what, rejected.errors)
            if reason == "already taken":  # answered under an id of its own, never the taken one
                assert rejected.job_id != body["job_id"], what

        # -- the rival's API token on the victim's objects: 403, naming the owner
        auth = teams.auth(rival)
        refused = {
            "move the alias": await rs.api.put(
                f"/api/registered-models/{name}/aliases/prod", json={"version": 1}, headers=auth
            ),
            "remove the alias": await rs.api.delete(
                f"/api/registered-models/{name}/aliases/prod", headers=auth
            ),
            "archive the model": await rs.api.post(
                f"/api/models/{named['job_id']}/archive", json={}, headers=auth
            ),
            "delete the model": await rs.api.delete(f"/api/models/{named['job_id']}", headers=auth),
            "cancel the sweep": await rs.api.post(
                f"/api/jobs/{sweep_id}/cancel", json={}, headers=auth
            ),
        }
        for what, answer in refused.items():
            assert answer.status_code == 403, (what, answer.text)
            assert victim in answer.json()["detail"] and rival in answer.json()["detail"], what

        # -- records forged onto the trusted topics, each skipped and counted
        [registered] = [e for e in tap.events if isinstance(e, ModelRegistered)
                        and e.model_id == named["job_id"]]  # fmt: skip
        await forge(rs, registered.model_copy(
            update={"model_id": squat["job_id"], "job_id": squat["job_id"], "tenant": rival}
        ))  # fmt: skip
        long_ago = datetime(1970, 1, 1, tzinfo=UTC)
        await forge(rs, ModelDeleted(model_id=named["job_id"], tenant=rival, at=long_ago))
        await forge(
            rs,
            ModelDeleted(model_id=named["job_id"], tenant=victim, at=long_ago),
            edit=lambda data: data.update(at="1970-01-01T00:00:00"),  # no time zone
        )
        await forge(rs, CancelRequested(job_id=sweep_id, tenant=rival, requested_by=rival))
        await forge(rs, TrialPlanned(sweep_id=sweep_id, trial=3, job_id=f"{sweep_id}-t003",
                                     params={"learning_rate": "fast"}))  # fmt: skip
        await forge(rs, TrainerHeartbeat(
            trainer_id=rs.trainer.presence_id, group="rogue", classes=["cpu"], every_s=1.0,
            at=datetime(9999, 1, 1, tzinfo=UTC),
        ))  # fmt: skip

        # -- the sweep goes on without its squatted trial and ends with a trial of its own
        [end] = await tap.wait_for(
            lambda e: isinstance(e, SweepEnded) and e.sweep_id == sweep_id, 1, 240
        )
        events = list(tap.events)
    assert end.status == "completed", end
    [lost] = [e for e in events if isinstance(e, TrialRejected) and e.sweep_id == sweep_id]
    assert lost.job_id == squat["job_id"] and "already taken" in " ".join(lost.errors)
    assert end.best_job_id is not None and end.best_job_id != squat["job_id"]
    [sweep_model] = [e for e in events if isinstance(e, ModelRegistered)
                     and e.model_id == sweep_id]  # fmt: skip
    assert sweep_model.tenant == victim
    trials = {e.job_id for e in events if isinstance(e, JobStarted)
              and e.job_id.startswith(f"{sweep_id}-t") and e.job_id != squat["job_id"]}  # fmt: skip
    assert end.best_job_id in trials and len(trials) == 2, trials

    # -- the victim's work is as it was
    assert {m: files_of(store, m) for m in files} == files
    assert await registry_of(rs, name) == registry
    for body in (named, spare):
        found = (await rs.api.get(f"/api/jobs/{body['job_id']}")).json()
        assert (found["status"], found["tenant"]) == ("completed", victim), found
    sweep = (await rs.api.get(f"/api/jobs/{sweep_id}")).json()
    assert (sweep["status"], sweep["tenant"]) == ("completed", victim), sweep

    # -- and every forged record was counted where it was skipped
    assert rs.controller is not None
    assert rs.controller.book.foreign_cancels and rs.controller.book.plans_refused >= 1
    health = await until(rs.api, "/api/health", lambda r: r.json()["foreign_records"] >= 2)
    assert health.json()["foreign_records"] >= 2  # the version of another's name, the deletion
    janitor = rs.trainer.janitor
    assert janitor.stats.foreign >= 1  # the rival's deletion of the victim's model
    assert janitor.skipped.counts, janitor.skipped  # the deletion without a time zone
    queue = (await rs.api.get("/api/queue")).json()
    [me] = [t for t in queue["trainers"] if t["trainer_id"] == rs.trainer.presence_id]
    assert 0 <= me["silent_s"] < 30, me  # its real beats still fold (a 9999 one froze them)

    # -- the janitor still works: the owner's own deletion is purged after the grace
    r = await rs.api.delete(f"/api/models/{spare['job_id']}", headers=teams.auth(victim))
    assert r.status_code == 202, r.text
    gone = f"models/{spare['job_id']}/"  # listed only: the janitor removes files meanwhile
    await until(rs.api, "/api/health", lambda _: not list(store.list(gone)), 60)
    assert files_of(store, named["job_id"]) == files[named["job_id"]]  # the forged 1970 one

    # -- usage: each team's seconds are the sum of its jobs' attempts, in the API and the CLI
    await _usage_adds_up(rs, victim, [named["job_id"], spare["job_id"], *trials], capsys)
    await _usage_adds_up(rs, rival, [squat["job_id"]], capsys)


async def _usage_adds_up(rs: RegistryStack, tenant: str, job_ids: list[str], capsys) -> None:
    per_job = []
    for job_id in job_ids:
        r = await until(rs.api, f"/api/jobs/{job_id}", lambda r: r.json()["usage"]["attempts"])
        per_job.append(r.json()["usage"])
    expected = {f: sum(u[f] for u in per_job) for f in ("wall_s", "cpu_s", "gpu_s")}
    assert expected["wall_s"] > 0 and expected["cpu_s"] > 0 and expected["gpu_s"] == 0
    r = await until(rs.api, f"/api/tenants/{tenant}/usage",
                    lambda r: r.json()["totals"]["jobs"] == len(job_ids))  # fmt: skip
    totals = r.json()["totals"]
    for figure, value in expected.items():
        assert totals[figure] == pytest.approx(value, abs=0.01), (tenant, figure, totals)
    capsys.readouterr()
    db = rs.settings.home / "api-registry.sqlite3"
    assert cli(["usage", "--tenant", tenant, "--json", "--db", str(db), "--no-sync"]) == 0
    [printed] = json.loads(capsys.readouterr().out)["tenants"]
    assert printed["totals"] == totals, (printed, totals)
