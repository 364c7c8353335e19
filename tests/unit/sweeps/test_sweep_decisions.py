"""The controller's decisions on a simulated trainer: concurrency, early stops, restarts, ends.

The book is folded from events only, so a simulation feeds it what trainers would publish and
checks what the controller sends back; the real broker and trainers are in
tests/integration/test_sweeps.py.
"""

from __future__ import annotations

from typing import Any

import pytest
from pydantic import BaseModel

from sparktrainer.contracts.events import (
    Artifact,
    CancelRequested,
    JobCancelled,
    JobCompleted,
    JobProgress,
    JobStarted,
    ModelRegistered,
)
from sparktrainer.contracts.jobspec import JobRequest
from sparktrainer.contracts.schedule_events import (
    SweepEnded,
    SweepValidated,
    TrialPlanned,
    TrialRejected,
    TrialStopped,
    TrialSubmission,
    TrialSubmitted,
)
from sparktrainer.contracts.sweeps import SweepConfig
from sparktrainer.settings import Limits
from sparktrainer.sweeps.book import SweepBook
from sparktrainer.sweeps.decide import Register, next_actions, result
from sparktrainer.sweeps.sampling import suggest

BASE = {
    "type": "train",
    "framework": "pytorch",
    "config": {"architecture": "custom", "input_size": 64, "output_size": 10, "epochs": 4},
}
LRS = [0.01, 0.003, 1e-6, 2e-6]


def spec(sweep_id: str = "sw1", **config: Any) -> SweepValidated:
    space = {"learning_rate": {"type": "choice", "values": LRS},
             "hidden_layers": {"type": "choice", "values": [[16], [32]]}}  # fmt: skip
    c = SweepConfig.model_validate({"base": BASE, "space": space, "sampler": "grid",
                                    "max_trials": 8, "max_concurrent": 2,
                                    "early_stopping": {"rule": "median"}, **config})  # fmt: skip
    return SweepValidated(sweep_id=sweep_id, name="sw", framework="pytorch", config=c,
                          trials=c.trials(1000))  # fmt: skip


def loss(params: dict[str, Any], epoch: int) -> float:
    """Good learning rates learn; tiny ones do not."""
    return 2.3 - (1.5 if params["learning_rate"] > 1e-4 else 0.01) * epoch / 4


class Sim:
    """A controller's book plus trainers that run every submitted trial one epoch per tick."""

    def __init__(self) -> None:
        self.book = SweepBook()
        self.log: list[BaseModel] = []  # everything on the bus, in order
        self.epochs: dict[str, int] = {}
        self.most_active = 0

    def publish(self, *events: BaseModel) -> None:
        for e in events:
            self.log.append(e)
            self.book.fold(e)

    def drive(self, sweep_id: str = "sw1") -> None:
        for _ in range(1000):
            sweep = self.book.sweeps.get(sweep_id)
            actions = next_actions(sweep, Limits()) if sweep else []
            if not actions:
                return
            for a in actions:
                if isinstance(a, Register):
                    self.publish(*result(sweep, a.trial, f"models/{sweep_id}/"))
                else:
                    self.publish(a)
            if sweep_id in self.book.sweeps:
                active = self.book.sweeps[sweep_id].active()
                self.most_active = max(self.most_active, len(active))

    def submitted(self) -> list[JobRequest]:
        """The trials' jobs, as the controller sent them on its own topic."""
        return [e.job for e in self.log if isinstance(e, TrialSubmission)]

    def tick(self) -> None:
        """Each submitted trial that has not ended moves one epoch (or ends)."""
        cancels = {e.job_id for e in self.log if isinstance(e, CancelRequested)}
        ended = {e.job_id for e in self.log if isinstance(e, JobCompleted | JobCancelled)}
        for job in self.submitted():
            jid = job.job_id or ""
            if jid in ended:
                continue
            if jid in cancels:
                self.publish(JobCancelled(job_id=jid, reason="cancel requested"))
                continue
            epoch = self.epochs.get(jid, 0)
            if epoch == 0:
                self.publish(JobStarted(job_id=jid, name="t", framework="pytorch",
                                        config_kind="pytorch.mlp", device="cpu", worker="w",
                                        total_epochs=4))  # fmt: skip
            if epoch == 4:
                self._complete(jid, job.config["learning_rate"])
                continue
            self.epochs[jid] = epoch + 1
            value = loss(job.config, epoch + 1)
            self.publish(JobProgress(job_id=jid, epoch=epoch + 1, total_epochs=4, step=epoch + 1,
                                     total_steps=4, val_loss=value))  # fmt: skip

    def _complete(self, jid: str, lr: float) -> None:
        art = Artifact(path="model.pth", size_bytes=1, sha256="a" * 64)
        self.publish(
            ModelRegistered(model_id=jid, job_id=jid, name="t", framework="pytorch",
                            architecture={"builder": "mlp"}, artifacts=[art],
                            storage_prefix=f"models/{jid}/"),
        )  # fmt: skip
        final = {"val_loss": loss({"learning_rate": lr}, 4)}
        self.publish(JobCompleted(job_id=jid, model_id=jid, metrics=final))

    def run(self, ticks: int = 60) -> None:
        for _ in range(ticks):
            self.drive()
            if "sw1" in self.book.ended:
                return
            self.tick()


def of(log: list[BaseModel], cls: type) -> list[Any]:
    return [e for e in log if isinstance(e, cls)]


def test_a_sweep_runs_every_trial_two_at_a_time_stops_losers_and_registers_the_best() -> None:
    sim = Sim()
    sim.publish(spec())
    sim.run()
    planned = of(sim.log, TrialPlanned)
    assert [p.trial for p in planned] == list(range(1, 9))
    assert sim.most_active == 2
    assert len(sim.submitted()) == 8 == len(of(sim.log, TrialSubmitted))
    stopped = of(sim.log, TrialStopped)
    assert stopped and all(p.params["learning_rate"] < 1e-4 for p in planned
                           if p.job_id in {s.job_id for s in stopped})  # fmt: skip
    [ended] = of(sim.log, SweepEnded)
    assert ended.status == "completed" and ended.best_trial in (1, 2, 3, 4)
    [model] = [e for e in of(sim.log, ModelRegistered) if e.model_id == "sw1"]
    assert model.storage_prefix == "models/sw1/" and f"best-trial:{ended.best_trial}" in model.tags
    assert [e.job_id for e in of(sim.log, JobCompleted)][-1] == "sw1"
    assert len([e for e in of(sim.log, JobStarted) if e.job_id == "sw1"]) == 1
    assert of(sim.log, JobProgress)[-1].job_id == "sw1"  # trials done: 8 of 8


def test_a_restart_from_the_log_plans_nothing_twice_and_resubmits_only_the_unmarked() -> None:
    sim = Sim()
    sim.publish(spec())
    sim.run(ticks=5)
    # The controller died after planning trial k but before submitting it.
    sweep = sim.book.sweeps["sw1"]
    n = len(sweep.trials) + 1
    lost = [e for e in next_actions(sweep, Limits())]
    assert isinstance(lost[0], TrialPlanned) and lost[0].trial == n
    sim.publish(lost[0])
    restarted = Sim()
    restarted.log, restarted.epochs = list(sim.log), dict(sim.epochs)
    for e in sim.log:
        restarted.book.fold(e)
    again = next_actions(restarted.book.sweeps["sw1"], Limits())
    assert isinstance(again[0], TrialSubmission) and again[0].job.job_id == lost[0].job_id
    restarted.run()
    plans = of(restarted.log, TrialPlanned)
    assert sorted(p.trial for p in plans) == list(range(1, 9))  # each once
    submissions = [e.job_id for e in restarted.submitted()]
    assert len(submissions) == len(set(submissions)) == 8
    assert of(restarted.log, SweepEnded)[0].status == "completed"


def test_a_cancelled_sweep_cancels_its_running_trials_and_ends_cancelled() -> None:
    sim = Sim()
    sim.publish(spec())
    sim.run(ticks=2)
    running = [t.job_id for t in sim.book.sweeps["sw1"].active()]
    sim.publish(CancelRequested(job_id="sw1", reason="enough"))
    sim.drive()
    assert {e.job_id for e in of(sim.log, CancelRequested)} >= set(running)
    assert "sw1" in sim.book.sweeps  # not before its trials have ended
    sim.tick()
    sim.drive()
    [ended] = of(sim.log, SweepEnded)
    assert ended.status == "cancelled" and of(sim.log, JobCancelled)[-1].job_id == "sw1"
    assert len(of(sim.log, TrialPlanned)) == 2  # nothing planned after the cancel


def test_a_sweep_none_of_whose_trials_completes_ends_failed() -> None:
    sim = Sim()
    sim.publish(spec(max_trials=2, early_stopping={"rule": "none"}))
    sim.drive()
    for job in sim.submitted():
        sim.publish(JobCancelled(job_id=job.job_id or "", reason="operator"))
    sim.drive()
    [ended] = of(sim.log, SweepEnded)
    assert ended.status == "failed" and "no trial completed" in (ended.reason or "")
    assert "2 cancelled" in (ended.reason or "")


def test_forged_plans_and_oversized_sweeps_change_nothing_or_end_failed() -> None:
    sim = Sim()
    sim.publish(spec())
    assert (
        sim.book.fold(TrialPlanned(sweep_id="sw1", trial=1, job_id="elsewhere", params={})) is None
    )
    assert (
        sim.book.fold(TrialPlanned(sweep_id="sw1", trial=99, job_id="sw1-t099", params={})) is None
    )
    assert (
        sim.book.fold(TrialPlanned(sweep_id="nope", trial=1, job_id="nope-t001", params={})) is None
    )
    huge = spec("sw2", max_trials=8, max_concurrent=2)
    forged = huge.model_copy(update={"trials": 5000})
    sim.publish(forged)
    sim.drive("sw2")
    [ended] = [e for e in of(sim.log, SweepEnded) if e.sweep_id == "sw2"]
    assert ended.status == "failed" and "trials" in (ended.reason or "")


@pytest.mark.parametrize(
    "params",
    [
        {"learning_rate": "fast", "hidden_layers": [16]},  # the issue's: a wrong type
        {"learning_rate": 0.5, "hidden_layers": [16]},  # a number the choice does not list
        {"learning_rate": 0.01, "hidden_layers": [True]},  # true is not 1 (nor 16)
        {"learning_rate": 0.01},  # a parameter missing
        {"learning_rate": 0.01, "hidden_layers": [16], "name": {"x": 1}},  # one not in the space
    ],
)
def test_a_plan_that_does_not_fit_the_space_is_ignored_counted_and_the_sweep_goes_on(
    params: dict[str, Any],
) -> None:
    sim = Sim()
    sim.publish(spec())
    forged = TrialPlanned(sweep_id="sw1", trial=1, job_id="sw1-t001", params=params)
    assert sim.book.fold(forged) is None and sim.book.plans_refused == 1
    sim.run()  # the controller plans trial 1 itself: every one of its own plans fits
    assert "sw1" in sim.book.ended and sim.book.plans_refused == 1
    assert {p.params["learning_rate"] for p in of(sim.log, TrialPlanned)} == set(LRS)


def test_the_controllers_own_draws_fit_the_space_of_every_kind_of_range() -> None:
    space = {"lr": {"type": "loguniform", "low": 1e-5, "high": 1.0},
             "wd": {"type": "uniform", "low": 0, "high": 1},
             "width": {"type": "int", "low": 8, "high": 64, "step": 8}}  # fmt: skip
    c = SweepConfig.model_validate({"base": BASE, "space": space, "max_trials": 50})
    for n in range(1, 51):
        assert c.plan_problem(suggest(c, n, [])) is None
    assert (
        c.plan_problem({"lr": 1e-3, "wd": 0.5, "width": 12}) == "width=12 is not in the space (int)"
    )
    assert c.plan_problem({"lr": 1e-3, "wd": 0.5, "width": 16.0}) is not None  # a float
    assert c.plan_problem({"lr": 2.0, "wd": 0.5, "width": 16}) is not None
    assert c.plan_problem({"lr": 1e-3, "wd": True, "width": 16}) is not None
    assert c.plan_problem({"lr": float("nan"), "wd": 0.5, "width": 16}) is not None


def test_a_trial_whose_id_another_job_holds_fails_and_the_sweep_goes_on_and_ends() -> None:
    sim = Sim()
    sim.publish(spec(max_trials=3, max_concurrent=1, early_stopping={"rule": "none"}))
    sim.drive()
    [first] = of(sim.log, TrialSubmission)
    assert (first.tenant, first.job.sweep_id, first.job.trial) == ("default", "sw1", 1)
    squatted = TrialRejected(sweep_id="sw1", trial=1, job_id="sw1-t001", errors=["taken"])
    sim.publish(squatted)
    # the squatter's own events under that id change nothing: the trial has ended
    sim.publish(JobCompleted(job_id="sw1-t001", model_id="sw1-t001", metrics={"val_loss": 0.0}))
    sim.drive()
    sim.run()
    [ended] = of(sim.log, SweepEnded)
    assert ended.status == "completed" and ended.best_trial != 1
    assert sim.book.ended == {"sw1"}


def test_the_sweeps_model_is_the_sweeps_tenants_whoever_trained_the_winner() -> None:
    sim = Sim()
    sim.publish(spec().model_copy(update={"tenant": "vision"}))
    sim.run()  # the trials' registrations in this sim carry the default tenant
    [model] = [e for e in of(sim.log, ModelRegistered) if e.model_id == "sw1"]
    assert model.tenant == "vision"
