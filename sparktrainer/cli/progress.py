"""The live view of one job: a rich progress bar (epoch, loss, accuracy, ETA) or NDJSON lines."""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from typing import Any

from rich.markup import escape
from rich.progress import BarColumn, Progress, SpinnerColumn, TaskID, TextColumn

from sparktrainer.cli.common import NEGATIVE, OK, TIMED_OUT, err, out, print_json, short_type
from sparktrainer.client.follow import JobFollower, final_status
from sparktrainer.contracts.events import (
    CheckpointSaved,
    JobCancelled,
    JobCompleted,
    JobFailed,
    JobProgress,
    JobRejected,
    JobStarted,
    JobValidated,
)
from sparktrainer.contracts.schedule_events import SweepValidated

VERDICT_STYLE = {"completed": "green", "rejected": "red", "failed": "red", "cancelled": "yellow"}


def _eta(seconds: float | None) -> str:
    if seconds is None:
        return "-"
    minutes, s = divmod(int(seconds), 60)
    hours, m = divmod(minutes, 60)
    return f"{hours}:{m:02d}:{s:02d}" if hours else f"{m}:{s:02d}"


class JobView:
    """Shows a job's events as they come; ``done`` prints the verdict."""

    def __init__(self, job_id: str, as_json: bool) -> None:
        self.job_id = job_id
        self.as_json = as_json
        self.plain = not as_json and not err.is_terminal  # a log line per event instead of a bar
        self.progress = Progress(
            SpinnerColumn(),
            TextColumn("[bold]{task.description}"),
            BarColumn(),
            TextColumn("epoch {task.fields[epoch]}"),
            TextColumn("loss {task.fields[loss]}"),
            TextColumn("acc {task.fields[acc]}"),
            TextColumn("ETA {task.fields[eta]}"),
            console=err,
            transient=False,
            disable=as_json or self.plain,
        )
        self.task: TaskID = self.progress.add_task(
            "submitted", total=None, epoch="-", loss="-", acc="-", eta="-"
        )
        self.last: Any = None
        self.validated: JobValidated | None = None  # what the end line recalls (parent, name)
        self.registered_as: str | None = None  # NAME:VERSION, once the read model says it

    def __enter__(self) -> JobView:
        self.progress.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.progress.stop()

    def update(self, event: Any) -> None:
        """Show one event of the job."""
        self.last = event
        if isinstance(event, JobValidated):
            self.validated = event
        if self.as_json:
            print_json({"event": short_type(event.ce_type), **event.model_dump(mode="json")})
            return
        if self.plain:
            err.print(f"{short_type(event.ce_type)} {escape(_summary(event))}", highlight=False)
        if isinstance(event, JobValidated | SweepValidated):
            self.progress.update(self.task, description="validated")
            for warning in () if self.plain else event.warnings:  # plain: in the line above
                self.progress.console.print(
                    f"[yellow]warning:[/] {escape(warning)}", highlight=False
                )
        elif isinstance(event, JobStarted):
            self.progress.update(
                self.task,
                description=f"running on {event.device}",
                total=event.total_epochs,
                completed=event.resumed_from_epoch or 0,
            )
        elif isinstance(event, JobProgress):
            self.progress.update(
                self.task,
                description="running",
                total=event.total_epochs,
                completed=min(event.epoch, event.total_epochs),
                epoch=f"{event.epoch}/{event.total_epochs}",
                loss=_fmt(event.loss),
                acc=_fmt(event.val_accuracy if event.val_accuracy is not None else event.accuracy),
                eta=_eta(event.eta_s),
            )
        status = final_status(event)
        if status is not None:
            self.progress.update(self.task, description=status, eta="-")

    def done(self, status: str | None, note: str | None = None) -> None:
        """Print the final verdict (or why there is none)."""
        if self.as_json:
            verdict = {"event": "verdict", "job_id": self.job_id, "status": status, "note": note}
            if self.registered_as:
                verdict["registered_as"] = self.registered_as
            print_json(verdict)
            return
        if status is None:
            self.progress.update(self.task, description="gave up")
            err.print(f"[yellow]{escape(note or '')}[/]")
            return
        self.progress.update(self.task, description=status)
        style = VERDICT_STYLE.get(status, "white")
        detail = escape(f"{self.job_id}: {self._detail()}")
        out.print(f"[{style}]{status}[/] {detail}", highlight=False)

    def _detail(self) -> str:
        ev = self.last
        if isinstance(ev, JobCompleted):
            metrics = ", ".join(f"{k} {v:.4g}" for k, v in ev.metrics.items())
            told = [f"model {ev.model_id}" + (f" ({metrics})" if metrics else "")]
            if self.validated is not None and self.validated.parent_ref is not None:
                parent = self.validated.parent_ref
                told.append(f"fine-tuned from {parent.ref} = {parent.model_id}")
            if self.registered_as:
                told.append(f"registered as {self.registered_as}")
            elif self.validated is not None and self.validated.register_as:
                told.append(f"registered under {self.validated.register_as}")
            return "; ".join(told)
        if isinstance(ev, JobRejected):
            return "; ".join(ev.errors)
        if isinstance(ev, JobFailed | JobCancelled):
            return _why(ev)
        return str(getattr(ev, "reason", "") or "")


def _why(ev: JobFailed | JobCancelled) -> str:
    """``[cause, signal 9, retriable] ErrorType: reason`` (old events have no cause)."""
    tags = [ev.cause.value] if ev.cause else []
    if isinstance(ev, JobFailed) and ev.signal:
        tags.append(f"signal {ev.signal}")
    if ev.retriable:
        tags.append("retriable")
    head = f"[{', '.join(tags)}] " if tags else ""
    kind = f"{ev.error_type}: " if isinstance(ev, JobFailed) else ""
    return f"{head}{kind}{ev.reason}"


def _fmt(value: float | None) -> str:
    return "-" if value is None else f"{value:.4f}"


def _summary(event: Any) -> str:
    """One line about an event, for logs: the facts it carries."""
    if isinstance(event, JobProgress):
        val = f" val_loss {_fmt(event.val_loss)} val_acc {_fmt(event.val_accuracy)}"
        return (
            f"epoch {event.epoch}/{event.total_epochs} step {event.step}/{event.total_steps} "
            f"train loss {_fmt(event.loss)} acc {_fmt(event.accuracy)}"
            + (val if event.val_loss is not None or event.val_accuracy is not None else "")
            + f" ETA {_eta(event.eta_s)}"
        )
    if isinstance(event, JobStarted):
        return f"on {event.device} ({event.worker}), {event.total_epochs} epochs"
    if isinstance(event, JobValidated):
        return _validated(event)
    if isinstance(event, CheckpointSaved):
        return f"epoch {event.epoch} step {event.step}: {event.key} ({event.size_bytes:,} bytes)"
    return ""


def _validated(event: JobValidated) -> str:
    facts = [f"{event.config_kind} for class {event.resource_class}, priority {event.priority}"]
    if event.parent_ref is not None:
        facts.append(f"parent {event.parent_ref.ref} = {event.parent_ref.model_id}")
    if event.register_as:
        facts.append(f"registers as {event.register_as}")
    return "; ".join([*facts, *(f"warning: {w}" for w in event.warnings)])


NameVersion = Callable[[str], Awaitable[str | None]]  # model id -> "NAME:VERSION" or None


async def follow_to_end(
    follower: JobFollower,
    as_json: bool,
    timeout_s: float | None,
    name_version: NameVersion | None = None,
) -> int:
    """Show a job's events as they come until it ends: exit 0 completed, 1 otherwise, and
    TIMED_OUT when ``timeout_s`` passes first.

    ``name_version`` looks up the version a completed job's model became of its
    ``register_as`` name (the read model numbers versions, not the event), for the end line.
    """
    view = JobView(follower.job_id, as_json=as_json)
    status: str | None = None
    with view:
        try:
            async for event in follower.events(timeout_s):
                view.update(event)
                status = final_status(event) or status
        except TimeoutError as e:
            view.done(None, str(e))
            return TIMED_OUT
        last, validated = view.last, view.validated
        if name_version and isinstance(last, JobCompleted) and validated and validated.register_as:
            view.registered_as = await name_version(last.model_id)
    view.done(status)
    return OK if status == "completed" else NEGATIVE
