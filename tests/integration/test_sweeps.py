"""A sweep on the real broker and S3: 4 trials, 2 at a time, early stopping, the best model
registered under the sweep's id, and a controller SIGKILLed mid-sweep that loses and
duplicates no trial. Then the trials as the API and `sparktrainer sweeps show` list them."""

from __future__ import annotations

import asyncio
import json
import os
import uuid
from collections import Counter

import httpx
import pytest

from sparktrainer.api.app import create_app
from sparktrainer.cli.main import main as cli
from sparktrainer.contracts.events import (
    JobCancelled,
    JobCompleted,
    JobFailed,
    JobStarted,
    ModelRegistered,
)
from sparktrainer.contracts.schedule_events import (
    SweepEnded,
    TrialPlanned,
    TrialStopped,
    TrialSubmission,
)
from sparktrainer.contracts.topics import (
    JOBS_LIFECYCLE,
    JOBS_REJECTED,
    JOBS_SUBMITTED,
    MODELS_REGISTERED,
    SWEEP_TRIALS,
    SWEEPS,
)
from sparktrainer.registry.sweeps import get_sweep
from tests.integration.procs import kill_group, start_consumer
from tests.integration.registry_kit import JSON
from tests.integration.schedule_kit import (
    digits_job,
    door_and_read_model,
    start_trainer,
    stop_trainer,
)
from tests.integration.tap import Tap, produce, producer_for

pytestmark = pytest.mark.integration
CONTROLLER = "consumers.sweep_controller"
TERMINAL = (JobCompleted, JobFailed, JobCancelled)


def trial_of(sweep_id: str, kinds: type | tuple[type, ...]):
    """Events of these kinds about one of the sweep's trials."""
    prefix = f"{sweep_id}-t"
    return lambda e: isinstance(e, kinds) and str(getattr(e, "job_id", "")).startswith(prefix)


def sweep_ended(sweep_id: str):
    return lambda e: isinstance(e, JobCompleted | JobFailed) and e.job_id == sweep_id


def sweep_job(sweep_id: str) -> dict:
    base = digits_job("trial", epochs=15)  # long enough for a stop to land before the end
    base.pop("job_id")
    return {
        "job_id": sweep_id,
        "name": "digits lr x width",
        "type": "sweep",
        "framework": "pytorch",
        "config": {
            "base": base,
            # Good learning rates first: the later, hopeless ones meet a median to lose to.
            "space": {"learning_rate": {"type": "choice", "values": [0.02, 1e-6]},
                      "hidden_layers": {"type": "choice", "values": [[16], [32]]}},
            "sampler": "grid",
            "max_trials": 4,
            "max_concurrent": 2,
            "metric": "val_loss",
            "early_stopping": {"rule": "median", "min_epochs": 1, "min_trials": 2},
        },
    }  # fmt: skip


async def hostile_records(producer, sweep_id: str) -> None:
    """What the controller must survive on the topics it reads (it reads them from the start)."""
    forged = TrialPlanned(sweep_id="no-such-sweep", trial=1, job_id="no-such-sweep-t001",
                          params={})  # fmt: skip
    from sparktrainer.contracts.envelope import encode

    record = encode(forged, "test")
    await produce(producer, SWEEPS, record.value, record.key, record.headers)
    await produce(producer, SWEEPS, b"\xff\xfe not json", sweep_id.encode())
    await produce(producer, SWEEPS, {"specversion": "1.0"}, sweep_id.encode())
    await produce(producer, JOBS_LIFECYCLE, b"[]", f"{sweep_id}-t001".encode())


async def test_a_sweep_survives_a_killed_controller_and_registers_its_best_trial(
    settings, store, tmp_path
) -> None:
    sweep_id = f"sweep-{uuid.uuid4().hex[:8]}"
    env = {**os.environ, "SPARKTRAINER_LOG_LEVEL": "WARNING"}
    db = tmp_path / "r.db"
    async with door_and_read_model(settings, db) as projector:
        trainer = await start_trainer(settings, "gpu")
        producer = producer_for(settings)
        await producer.start()
        controller = await start_consumer(CONTROLLER, None, env)
        try:
            async with Tap(settings, SWEEPS, JOBS_LIFECYCLE, JOBS_REJECTED, MODELS_REGISTERED,
                           SWEEP_TRIALS) as tap:  # fmt: skip
                await hostile_records(producer, sweep_id)
                await produce(producer, JOBS_SUBMITTED, sweep_job(sweep_id))
                await tap.wait_for(trial_of(sweep_id, TERMINAL), 1, 240)
                kill_group(controller)  # mid-sweep: a trial running, one planned, one to come
                controller = await start_consumer(CONTROLLER, None, env)
                [end] = await tap.wait_for(sweep_ended(sweep_id), 1, 300)
                await asyncio.sleep(1.0)  # anything sent twice would show by now
                events = [e for e in tap.events if e is not None]
        finally:
            controller.terminate()
            await asyncio.to_thread(controller.wait, 30)
            await producer.stop()
            await stop_trainer(*trainer)
        assert isinstance(end, JobCompleted), end
        await projector.catch_up(timeout_s=60)
        _assert_every_trial_once(events, sweep_id)
        _assert_best_registered(events, sweep_id, store, end)
        await _assert_listed(settings, db, sweep_id, projector)


def _assert_every_trial_once(events: list, sweep_id: str) -> None:
    plans = {(e.trial, json.dumps(e.params, sort_keys=True)) for e in events
             if isinstance(e, TrialPlanned) and e.sweep_id == sweep_id}  # fmt: skip
    assert sorted(n for n, _ in plans) == list(range(1, 5)), plans  # each planned once, one way
    trials = {f"{sweep_id}-t{n:03d}" for n in range(1, 5)}
    submitted = Counter(e.job.job_id for e in events if isinstance(e, TrialSubmission))
    assert set(submitted) == trials and max(submitted.values()) <= 2, submitted
    starts = Counter(e.job_id for e in events if isinstance(e, JobStarted) and e.job_id in trials)
    assert starts == Counter(trials), starts  # trained once each: none lost, none twice
    first_ends = [e for e in events if trial_of(sweep_id, TERMINAL)(e)]
    ends = {(e.job_id, type(e).__name__, e.event_id()) for e in first_ends
            if not getattr(e, "already_ended", None)}  # fmt: skip
    assert Counter(j for j, _, _ in ends) == Counter(trials), ends  # one end each
    stopped = {e.job_id for e in events if isinstance(e, TrialStopped) and e.sweep_id == sweep_id}
    cancelled = {j for j, kind, _ in ends if kind == "JobCancelled"}
    assert stopped and stopped & cancelled, (stopped, cancelled)  # early stopping cut some short


def _assert_best_registered(events: list, sweep_id: str, store, end: JobCompleted) -> None:
    [ended] = [e for e in events if isinstance(e, SweepEnded) and e.sweep_id == sweep_id]
    finals = {e.job_id: e.metrics["val_loss"] for e in events
              if isinstance(e, JobCompleted) and e.job_id.startswith(sweep_id + "-t")}  # fmt: skip
    assert ended.best_job_id == min(finals, key=lambda j: (finals[j], j))
    assert end.model_id == sweep_id and end.metrics["val_loss"] == finals[ended.best_job_id]
    [model] = [e for e in events if isinstance(e, ModelRegistered) and e.model_id == sweep_id]
    [best] = [
        e for e in events if isinstance(e, ModelRegistered) and e.model_id == ended.best_job_id
    ]
    assert {a.sha256 for a in model.artifacts} == {a.sha256 for a in best.artifacts}
    assert store.get_bytes(f"models/{sweep_id}/model.pth") == store.get_bytes(
        f"models/{ended.best_job_id}/model.pth")  # fmt: skip
    meta = store.get_json(f"models/{sweep_id}/metadata.json")
    assert meta["model_id"] == sweep_id and meta["copied_from"] == ended.best_job_id


async def _assert_listed(settings, db, sweep_id: str, projector) -> None:
    sweep = get_sweep(projector.conn, sweep_id)
    assert sweep is not None and sweep["status"] == "completed"
    table = sweep["trial_table"]
    assert [r["trial"] for r in table] == list(range(1, 5))
    assert {r["status"] for r in table} <= {"completed", "stopped"} and "stopped" in {
        r["status"] for r in table}  # fmt: skip
    assert all(r["val_loss"] is not None for r in table if r["status"] == "completed")
    app = create_app(settings, db_path=db)
    async with httpx.AsyncClient(
        transport=httpx.ASGITransport(app=app), base_url="http://localhost", headers=JSON
    ) as c:
        answer = (await c.get(f"/api/sweeps/{sweep_id}")).json()
        assert [r["trial"] for r in answer["trial_table"]] == list(range(1, 5))
        assert answer["ranking"][0] == answer["ended"]["best_trial"]
        assert (await c.get("/api/sweeps/nope")).status_code == 404
        queue = (await c.get("/api/queue")).json()
        assert {c["class"] for c in queue["classes"]} == {"cpu", "gpu", "gpu-large", "multi-gpu"}
    shown = await asyncio.to_thread(
        _run_cli, ["sweeps", "show", sweep_id, "--db", str(db), "--no-sync"]
    )
    assert "trial" in shown and "val_loss" in shown and "stopped" in shown and "best" in shown


def _run_cli(argv: list[str]) -> str:
    import contextlib
    import io

    from sparktrainer.cli import common

    buffer = io.StringIO()
    saved = common.out.file
    common.out.file = buffer
    try:
        with contextlib.redirect_stdout(buffer):
            assert cli(argv) == 0
    finally:
        common.out.file = saved
    return buffer.getvalue()
