"""The sweep controller on the in-memory broker, started over a log holding the issue's forged
trial plan (a parameter of the wrong type): it ignores and counts it, plans that trial itself,
and keeps running (it used to crash on it at every start)."""

from __future__ import annotations

import asyncio

import pytest

from sparktrainer.bus.kafka import make_producer, send
from sparktrainer.contracts.envelope import encode
from sparktrainer.contracts.schedule_events import TrialPlanned
from sparktrainer.settings import Settings
from sparktrainer.sweeps.controller import SweepController
from tests.unit.sweeps.test_sweep_decisions import LRS, spec

pytestmark = pytest.mark.memory
WAIT_S = 20.0


async def test_a_forged_wrong_typed_plan_is_ignored_and_the_controller_plans_the_trial(
    memory_settings: Settings,
) -> None:
    producer = make_producer(memory_settings)
    await producer.start()
    try:
        await send(producer, encode(spec(), "validator"))
        wrong = {"learning_rate": "fast", "hidden_layers": {"x": 1}}
        forged = TrialPlanned(sweep_id="sw1", trial=1, job_id="sw1-t001", params=wrong)
        await send(producer, encode(forged, "intruder"))
    finally:
        await producer.stop()
    controller = SweepController(memory_settings, store=object())  # type: ignore[arg-type]
    task = asyncio.create_task(controller.run())
    try:
        await controller.wait_positioned(WAIT_S)
        assert controller.book.plans_refused == 1 and not task.done()
        sweep = controller.book.sweeps["sw1"]
        assert sorted(sweep.trials) == [1, 2]  # max_concurrent 2: its own plans, both submitted
        assert all(t.submitted and t.params["learning_rate"] in LRS for t in sweep.trials.values())
        assert not controller.faults.errors
    finally:
        controller.stop()
        await asyncio.wait_for(task, WAIT_S)
