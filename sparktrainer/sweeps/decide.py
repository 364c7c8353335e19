"""The sweep controller's decisions: what one open sweep needs next, as events to send.

:func:`next_actions` looks at a sweep (as the book folded it) and returns the next events to
send in order, or a :class:`Register` (copy the best trial's model, then announce the
result). The controller sends them, folds them into the book, and asks again until nothing is
left to do.
Each step is written so that its own events make it return nothing the next time.
"""

from __future__ import annotations

import os
import socket
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from pydantic import BaseModel

from sparktrainer.contracts import events
from sparktrainer.contracts import schedule_events as sched
from sparktrainer.contracts.caps import check_sweep
from sparktrainer.contracts.jobspec import SWEEP_TYPE, JobRequest
from sparktrainer.contracts.sweeps import trial_id, trial_job
from sparktrainer.settings import Limits
from sparktrainer.sweeps.book import Sweep, Trial
from sparktrainer.sweeps.sampling import Tried, suggest
from sparktrainer.sweeps.stopping import stop_reason

SOURCE = "sparktrainer/sweep-controller"
CONTROLLER = f"{socket.gethostname()}/{os.getpid()}"


@dataclass(frozen=True)
class Register:
    """Copy ``trial``'s model to the sweep's id and announce the sweep's result."""

    trial: Trial


Action = BaseModel | Register
Step = Callable[[Sweep, Limits], list[Action] | None]  # None: nothing here, ask the next step


def next_actions(sweep: Sweep, limits: Limits) -> list[Action]:
    """The next events for this sweep ([] when it waits for the log to move on)."""
    for step in (_start, _recheck, _cancel, _submit, _early_stop, _plan, _progress, _finish):
        actions = step(sweep, limits)
        if actions is not None:
            return actions
    return []


def _start(sweep: Sweep, _: Limits) -> list[Action] | None:
    if sweep.started:
        return None
    spec = sweep.spec
    return [
        events.JobStarted(job_id=spec.sweep_id, name=spec.name, framework=spec.framework,
                   config_kind=SWEEP_TYPE, device="sweep-controller", worker=CONTROLLER,
                   total_epochs=spec.trials)
    ]  # fmt: skip


def _recheck(sweep: Sweep, limits: Limits) -> list[Action] | None:
    """A sweep on the topic that the validator did not send can still not ask beyond a cap."""
    problems = check_sweep(sweep.spec.config, limits)
    if sweep.spec.trials > sweep.spec.config.max_trials or sweep.spec.trials > limits.sweep_trials:
        problems.append(f"trials {sweep.spec.trials} is above max_trials or the trials cap")
    return _failed(sweep, "; ".join(problems)) if problems else None


def _cancel(sweep: Sweep, _: Limits) -> list[Action] | None:
    """Asked to cancel: cancel every running trial, end once none is left."""
    if sweep.cancel is None:
        return None
    unsent = [t for t in sweep.active() if not t.cancel_sent]
    if unsent:
        reason = f"sweep {sweep.sweep_id} was cancelled: {sweep.cancel}"[:1024]
        return [events.CancelRequested(job_id=t.job_id, reason=reason, requested_by=SOURCE,
                                       tenant=sweep.spec.tenant) for t in unsent]  # fmt: skip
    if sweep.active():
        return []  # their ends are on the way
    return [
        sched.SweepEnded(sweep_id=sweep.sweep_id, status="cancelled", reason=sweep.cancel),
        events.JobCancelled(job_id=sweep.sweep_id, reason=sweep.cancel),
    ]


def _submit(sweep: Sweep, _: Limits) -> list[Action] | None:
    """A planned trial goes out (once more after a crash in between) on the controller's own
    topic, with the sweep's tenant: the validator answers it as an ordinary job."""
    trial = next((t for t in sweep.trials.values() if not t.submitted and not t.ended), None)
    if trial is None:
        return None
    spec = sweep.spec
    job = JobRequest.model_validate(
        trial_job(spec.sweep_id, spec.name, spec.config.base, trial.n, trial.params)
    )
    return [
        sched.TrialSubmission(sweep_id=spec.sweep_id, trial=trial.n, tenant=spec.tenant, job=job),
        sched.TrialSubmitted(sweep_id=spec.sweep_id, trial=trial.n, job_id=trial.job_id),
    ]


def _early_stop(sweep: Sweep, _: Limits) -> list[Action] | None:
    """The sweep's rule on each running trial's newly finished epochs."""
    config = sweep.spec.config
    if config.early_stopping.rule == "none":
        return None
    minimize = config.better() == "minimize"
    for trial in sweep.active():
        if trial.stopped is not None or trial.status != "running":
            continue
        mine = trial.values()
        others = [t.values() for t in sweep.trials.values() if t is not trial]
        for epoch in sorted(e for e in mine if e > trial.checked):
            trial.checked = epoch
            max_epochs = int(trial_epochs(sweep, trial))
            reason = stop_reason(mine, others, epoch, config.early_stopping, minimize, max_epochs)
            if reason is not None:
                return [
                    sched.TrialStopped(sweep_id=sweep.sweep_id, trial=trial.n, job_id=trial.job_id,
                                 rule=config.early_stopping.rule, epoch=epoch, reason=reason),
                    events.CancelRequested(job_id=trial.job_id, reason=f"early stopping: {reason}",
                                    requested_by=SOURCE, tenant=sweep.spec.tenant),
                ]  # fmt: skip
    return None


def trial_epochs(sweep: Sweep, trial: Trial) -> int:
    """The epochs a trial runs (its params may set them; else the base's, else a large number)."""
    epochs = trial.params.get("epochs", sweep.spec.config.base.get("config", {}).get("epochs"))
    return epochs if isinstance(epochs, int) and epochs > 0 else 10**6


def _plan(sweep: Sweep, _: Limits) -> list[Action] | None:
    """While a slot is free and trials remain, plan the next one."""
    spec = sweep.spec
    if len(sweep.active()) >= spec.config.max_concurrent or len(sweep.trials) >= spec.trials:
        return None
    n = next(i for i in range(1, spec.trials + 1) if i not in sweep.trials)
    params = suggest(spec.config, n, history(sweep))
    return [sched.TrialPlanned(sweep_id=spec.sweep_id, trial=n, job_id=trial_id(spec.sweep_id, n),
                         params=params)]  # fmt: skip


def history(sweep: Sweep) -> list[Tried]:
    """What the sampler learns from: the ended trials, in trial order."""
    out = []
    for trial in sorted(sweep.trials.values(), key=lambda t: t.n):
        if not trial.ended:
            continue
        last = trial.values()
        value = sweep.value(trial) if trial.status == "completed" else None
        if trial.stopped is not None and last:
            value = last[max(last)]
        out.append(Tried(trial.params, value, stopped=trial.stopped is not None))
    return out


def best(sweep: Sweep) -> Trial | None:
    """The completed trial with the best final metric (the lower number on a tie)."""
    sign = 1 if sweep.spec.config.better() == "minimize" else -1
    done = [(sign * v, t.n, t) for t in sweep.trials.values() if (v := sweep.value(t)) is not None]
    return min(done, key=lambda x: (x[0], x[1]))[2] if done else None


def _progress(sweep: Sweep, _: Limits) -> list[Action] | None:
    """One progress event for the sweep per ended trial: `submit --wait` shows trials done."""
    ended = sum(t.ended for t in sweep.trials.values())
    if ended <= sweep.progress_sent:
        return None
    sweep.progress_sent = ended
    top = best(sweep)
    metric = {sweep.spec.config.metric: sweep.value(top)} if top is not None else {}
    total = sweep.spec.trials
    fields: dict[str, Any] = {"job_id": sweep.sweep_id, "epoch": ended, "step": ended}
    fields.update(total_epochs=total, total_steps=total, **metric)
    return [events.JobProgress.model_validate(fields)]


def _finish(sweep: Sweep, _: Limits) -> list[Action] | None:
    """Every trial ended: register the best one's model as the sweep's, or fail."""
    if len(sweep.trials) < sweep.spec.trials or sweep.active():
        return None
    winner = best(sweep)
    if winner is None:
        counts = _counts(sweep)
        return _failed(sweep, f"no trial completed with a {sweep.spec.config.metric} ({counts})")
    return [Register(winner)] if winner.registered is not None else []  # its model is on the way


def _counts(sweep: Sweep) -> str:
    statuses = ["stopped" if t.stopped else str(t.status) for t in sweep.trials.values()]
    return ", ".join(f"{statuses.count(s)} {s}" for s in sorted(set(statuses)))


def _failed(sweep: Sweep, reason: str) -> list[Action]:
    return [
        sched.SweepEnded(sweep_id=sweep.sweep_id, status="failed", reason=reason[:1000]),
        events.JobFailed(job_id=sweep.sweep_id, reason=reason[:1000], error_type="SweepFailed"),
    ]


def result(sweep: Sweep, winner: Trial, prefix: str) -> list[BaseModel]:
    """The sweep's model (the winner's files under ``prefix``), its end, the sweep job's end."""
    reg, spec, value = winner.registered, sweep.spec, sweep.value(winner)
    assert reg is not None and value is not None
    metric = spec.config.metric
    model = events.ModelRegistered(
        **reg.model_dump(exclude={"model_id", "job_id", "name", "storage_prefix", "tags",
                                  "description", "created_at", "tenant"}),
        model_id=spec.sweep_id, job_id=spec.sweep_id, name=spec.name, storage_prefix=prefix,
        tenant=spec.tenant,  # the sweep's owner owns its model (and a name it registers as)
        tags=[*spec.tags, "sweep", f"best-trial:{winner.n}"][-64:],
        description=f"Best trial {winner.n} ({winner.job_id}) of sweep {spec.sweep_id}: "
        f"{metric} {value:.6g}",
    )  # fmt: skip
    metrics: dict[str, Any] = {metric: value, "best_trial": float(winner.n)}
    return [
        model,
        sched.SweepEnded(sweep_id=spec.sweep_id, status="completed", best_trial=winner.n,
                   best_job_id=winner.job_id, model_id=spec.sweep_id, value=value),
        events.JobCompleted(job_id=spec.sweep_id, model_id=spec.sweep_id, metrics=metrics),
    ]  # fmt: skip
