"""What the sweep controller knows, folded from the log: each open sweep and its trials.

The book is the controller's only state and a pure fold of events (its own decisions among
them), so a restarted controller that folds the log again knows exactly what it knew. Every
fold is idempotent: the controller folds what it sends at once and again when it reads it back.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from sparktrainer.contracts import events
from sparktrainer.contracts import schedule_events as sched
from sparktrainer.contracts.sweeps import finite, trial_id

ENDED = ("completed", "failed", "cancelled", "rejected")


@dataclass
class Trial:
    """One trial: its plan, what the controller decided about it, and how it is doing."""

    n: int
    job_id: str
    params: dict[str, Any]
    metric: str  # the sweep's: what its progress events are read for
    submitted: bool = False
    stopped: str | None = None  # why early stopping stopped it
    cancel_sent: bool = False
    status: str | None = None  # None until it starts; then running, or how it ended
    metrics: dict[str, float] = field(default_factory=dict)  # the completed job's
    reported: dict[int, float] = field(default_factory=dict)  # the metric per epoch, latest
    closed: int = 0  # epochs up to this one are finished
    registered: events.ModelRegistered | None = None
    checked: int = 0  # early stopping looked at epochs up to this one (a memo, not state)

    @property
    def ended(self) -> bool:
        """Whether the trial has its end."""
        return self.status in ENDED

    def values(self) -> dict[int, float]:
        """The metric at each finished epoch."""
        return {e: v for e, v in self.reported.items() if e <= self.closed}


@dataclass
class Sweep:
    """An open sweep: the validated search and its trials by number."""

    spec: sched.SweepValidated
    trials: dict[int, Trial] = field(default_factory=dict)
    started: bool = False
    cancel: str | None = None  # why a cancel was asked
    progress_sent: int = 0  # trials ended when the last progress event went out (a memo)

    @property
    def sweep_id(self) -> str:
        """The sweep's id (also its job id and, at the end, its model id)."""
        return self.spec.sweep_id

    def active(self) -> list[Trial]:
        """Planned trials that have not ended."""
        return [t for t in self.trials.values() if not t.ended]

    def value(self, trial: Trial) -> float | None:
        """A completed trial's final metric (None when it has none)."""
        v = trial.metrics.get(self.spec.config.metric)
        return float(v) if trial.status == "completed" and finite(v) else None


class SweepBook:
    """Every open sweep, the ids of ended ones, and which sweep each trial job belongs to."""

    def __init__(self) -> None:
        self.sweeps: dict[str, Sweep] = {}
        self.ended: set[str] = set()
        self.by_job: dict[str, tuple[str, int]] = {}
        self.foreign_cancels: set[str] = set()  # cancels of another tenant's sweep or trial
        self.plans_refused = 0  # plans that break the trial-id rule or do not fit the space

    def __repr__(self) -> str:
        return f"SweepBook(open={len(self.sweeps)}, ended={len(self.ended)})"

    def knows(self, key: bytes | None) -> bool:
        """Whether a record with this key can be about an open sweep or one of its trials."""
        text = key.decode("utf-8", "replace") if key else ""
        return text in self.sweeps or text in self.by_job

    def fold(self, event: Any) -> str | None:
        """Fold one event; the id of the open sweep it changed (None: nothing changed)."""
        if isinstance(
            event,
            sched.SweepValidated
            | sched.TrialPlanned
            | sched.TrialSubmitted
            | sched.TrialStopped
            | sched.TrialRejected,
        ):
            return self._sweep_event(event)
        if isinstance(event, sched.SweepEnded):
            return self._end(event.sweep_id)
        job_id = getattr(event, "job_id", None) or getattr(event, "model_id", None)
        if not isinstance(job_id, str):
            return None
        if job_id in self.sweeps:
            return self._about_sweep(self.sweeps[job_id], event)
        if job_id in self.by_job:
            sweep_id, n = self.by_job[job_id]
            if isinstance(event, events.CancelRequested) and not self._own(
                self.sweeps[sweep_id], event
            ):
                return None
            return sweep_id if _trial_event(self.sweeps[sweep_id].trials[n], event) else None
        return None

    def _own(self, sweep: Sweep, cancel: events.CancelRequested) -> bool:
        """Whether a cancel asks for the sweep's own tenant; another's is ignored and counted."""
        if cancel.tenant == sweep.spec.tenant:
            return True
        self.foreign_cancels.add(cancel.event_id())
        return False

    def _sweep_event(self, ev: Any) -> str | None:
        if isinstance(ev, sched.SweepValidated):
            if ev.sweep_id in self.sweeps or ev.sweep_id in self.ended:
                return None
            self.sweeps[ev.sweep_id] = Sweep(ev)
            return ev.sweep_id
        sweep = self.sweeps.get(ev.sweep_id)
        if sweep is None:
            return None
        if isinstance(ev, sched.TrialPlanned):
            return self._planned(sweep, ev)
        trial = sweep.trials.get(ev.trial)
        if trial is None or trial.job_id != ev.job_id:
            return None
        if isinstance(ev, sched.TrialSubmitted):
            trial.submitted = True
        elif isinstance(ev, sched.TrialRejected):
            if trial.ended:
                return None
            trial.status = "rejected"  # its id is another job's: whatever it does is not ours
        elif trial.stopped is None:
            trial.stopped = ev.reason
        return sweep.sweep_id

    def _planned(self, sweep: Sweep, ev: sched.TrialPlanned) -> str | None:
        """The first plan of trial n stands; a plan that breaks the id rule, or whose
        parameters are not a point of the sweep's space (a forged one), is not one."""
        if ev.trial in sweep.trials:
            return None
        valid = 1 <= ev.trial <= sweep.spec.trials and ev.job_id == trial_id(ev.sweep_id, ev.trial)
        if not valid or sweep.spec.config.plan_problem(ev.params) is not None:
            self.plans_refused += 1
            return None
        metric = sweep.spec.config.metric
        sweep.trials[ev.trial] = Trial(ev.trial, ev.job_id, dict(ev.params), metric)
        self.by_job[ev.job_id] = (sweep.sweep_id, ev.trial)
        return sweep.sweep_id

    def _about_sweep(self, sweep: Sweep, ev: Any) -> str | None:
        if isinstance(ev, events.JobStarted) and not sweep.started:
            sweep.started = True
            return sweep.sweep_id
        if isinstance(ev, events.CancelRequested) and not self._own(sweep, ev):
            return None
        if isinstance(ev, events.CancelRequested) and sweep.cancel is None:
            sweep.cancel = ev.reason
            return sweep.sweep_id
        if isinstance(
            ev, events.JobCompleted | events.JobFailed | events.JobCancelled
        ) and not getattr(ev, "already_ended", None):
            return self._end(sweep.sweep_id)
        return None

    def _end(self, sweep_id: str) -> str | None:
        """An ended sweep keeps only its id: later events about it or its trials change nothing."""
        sweep = self.sweeps.pop(sweep_id, None)
        self.ended.add(sweep_id)
        for trial in sweep.trials.values() if sweep else ():
            self.by_job.pop(trial.job_id, None)
        return None


def _trial_event(trial: Trial, ev: Any) -> bool:
    """Fold a trial job's event into the trial; whether it changed anything."""
    if isinstance(ev, events.CancelRequested):
        changed, trial.cancel_sent = not trial.cancel_sent, True
        return changed
    if isinstance(ev, events.ModelRegistered):
        changed, trial.registered = trial.registered is None, trial.registered or ev
        return changed
    if trial.ended or (isinstance(ev, events.JobCancelled) and ev.already_ended):
        return False
    if isinstance(ev, events.JobStarted):
        trial.status = "running"
    elif isinstance(ev, events.JobProgress):
        _progress(trial, ev)
    elif isinstance(ev, events.JobCompleted):
        trial.status, trial.metrics = "completed", dict(ev.metrics)
        trial.closed = max(trial.reported, default=0)
    elif isinstance(ev, events.JobFailed | events.JobCancelled | events.JobRejected):
        trial.status = {events.JobFailed: "failed", events.JobCancelled: "cancelled"}.get(
            type(ev), "rejected"
        )
    else:
        return False
    return True


def _progress(trial: Trial, ev: events.JobProgress) -> None:
    """The metric of the epoch in progress; an epoch is finished once the next one reports
    (or its end-of-epoch event, the one with validation numbers, came)."""
    trial.status = "running"
    value = getattr(ev, trial.metric, None)
    if finite(value):
        trial.reported[ev.epoch] = float(value)
    ended = ev.val_loss is not None or ev.val_accuracy is not None
    trial.closed = max(trial.closed, ev.epoch if ended else ev.epoch - 1)
