"""What the trainer reports to Prometheus, measured from the events it forwards and its worker.

Histograms: a job's wait from validated to its first training step, seconds per optimizer
step (between two reports of one epoch, so validation is not counted), checkpoint uploads;
counters: checkpoint bytes, jobs by how they ended, worker restarts, the CPU- and GPU-seconds
of each attempt's usage by tenant and class; a gauge of GPU memory.
"""

from __future__ import annotations

from collections import OrderedDict
from collections.abc import Iterable, Iterator
from typing import Any

from prometheus_client import Counter, Gauge, Histogram
from prometheus_client.core import CounterMetricFamily, Metric
from prometheus_client.registry import Collector

from sparktrainer.contracts.events import (
    CheckpointSaved,
    JobCancelled,
    JobCompleted,
    JobFailed,
    JobPreempted,
    JobProgress,
    JobValidated,
)
from sparktrainer.contracts.failures import FailureReason
from sparktrainer.training.worker.warm import WarmWorker

_SECONDS = (0.01, 0.05, 0.1, 0.5, 1, 2, 5, 10, 30, 60, 120, 300, 900)
_STEP_SECONDS = (0.001, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10)
OTHER_TENANT = "_other"  # the label of a tenant the trainer's file does not list (no valid name)
ENDS = (JobCompleted, JobFailed, JobCancelled, JobPreempted)
COUNTED_ATTEMPTS = 10_000  # attempts remembered, so a re-announced end is not counted twice


class TrainerObserver:
    """Observations from one trainer's event stream (one job at a time)."""

    def __init__(self, tenants: Iterable[str] = ()) -> None:
        self.tenants = frozenset(tenants)
        self.start_delay = Histogram(
            "sparktrainer_job_start_delay_seconds",
            "From a job's validation to its first reported training step",
            buckets=_SECONDS,
            registry=None,
        )
        self.step_time = Histogram(
            "sparktrainer_step_seconds",
            "Seconds per optimizer step, between two progress reports of one epoch",
            buckets=_STEP_SECONDS,
            registry=None,
        )
        self.upload_time = Histogram(
            "sparktrainer_checkpoint_upload_seconds",
            "How long a checkpoint upload to S3 took",
            buckets=_SECONDS,
            registry=None,
        )
        self.upload_bytes = Counter(
            "sparktrainer_checkpoint_upload_bytes", "Bytes of checkpoints uploaded", registry=None
        )
        self.gpu_memory = Gauge(
            "sparktrainer_gpu_memory_bytes",
            "Peak GPU memory of the running job at its last report (absent without a GPU)",
            registry=None,
        )
        self.failures = Counter(
            "sparktrainer_trainer_failures",
            "Jobs this trainer ended failed or cancelled or gave back preempted, by reason "
            "(contracts/failures.py)",
            ["reason"],
            registry=None,
        )
        self.cpu_seconds = Counter(
            "sparktrainer_trainer_cpu_seconds",
            "CPU seconds of the worker and its ranks over each attempt, by tenant and class",
            ["tenant", "class"],
            registry=None,
        )
        self.gpu_seconds = Counter(
            "sparktrainer_trainer_gpu_seconds",
            "Seconds each attempt held its GPUs, times how many, by tenant and class",
            ["tenant", "class"],
            registry=None,
        )
        self._counted: OrderedDict[tuple[str, int], None] = OrderedDict()
        self._last: JobProgress | None = None
        self._first_seen: set[tuple[str, int]] = set()

    def observe(self, job: JobValidated, event: Any) -> None:
        """Take what an event of ``job`` says about time, bytes and memory."""
        if isinstance(event, ENDS):
            self._usage(job, event)
        if isinstance(event, CheckpointSaved):
            self.upload_bytes.inc(event.size_bytes)
            if event.upload_s is not None:
                self.upload_time.observe(event.upload_s)
        elif isinstance(event, JobProgress):
            self._progress(job, event)
        elif isinstance(event, JobFailed):
            self.failures.labels(reason=(event.cause or FailureReason.INTERNAL).value).inc()
        elif isinstance(event, JobCancelled) and event.already_ended is None:
            self.failures.labels(reason=(event.cause or FailureReason.CANCELLED).value).inc()
        elif isinstance(event, JobPreempted):
            self.failures.labels(reason=event.cause.value).inc()

    def _usage(
        self, job: JobValidated, end: JobCompleted | JobFailed | JobCancelled | JobPreempted
    ) -> None:
        """Each attempt's CPU- and GPU-seconds, once (a stored end is re-announced as sent)."""
        tenant = job.tenant if job.tenant in self.tenants else OTHER_TENANT
        for used in end.usage:
            if (job.job_id, used.attempt) in self._counted:
                continue
            self._counted[(job.job_id, used.attempt)] = None
            if len(self._counted) > COUNTED_ATTEMPTS:
                self._counted.popitem(last=False)
            self.cpu_seconds.labels(tenant, job.resource_class).inc(used.cpu_s)
            self.gpu_seconds.labels(tenant, job.resource_class).inc(used.gpu_s)

    def _progress(self, job: JobValidated, report: JobProgress) -> None:
        if (job.job_id, report.attempt) not in self._first_seen and report.phase == "step":
            self._first_seen.add((job.job_id, report.attempt))
            if report.attempt == 1:
                delay = (report.at - job.validated_at).total_seconds()
                self.start_delay.observe(max(0.0, delay))
        last, self._last = self._last, report
        same_epoch = last is not None and (last.job_id, last.attempt, last.epoch) == (
            report.job_id,
            report.attempt,
            report.epoch,
        )
        if same_epoch and last and last.phase == report.phase == "step" and report.step > last.step:
            seconds = (report.at - last.at).total_seconds() / (report.step - last.step)
            self.step_time.observe(max(0.0, seconds))
        if report.gpu_memory_bytes is not None:
            self.gpu_memory.set(report.gpu_memory_bytes)

    def collectors(self) -> list[Collector]:
        """The instruments, to register with the service's registry."""
        return [self.start_delay, self.step_time, self.upload_time, self.upload_bytes,
                self.gpu_memory, self.failures, self.cpu_seconds, self.gpu_seconds]  # fmt: skip


class WorkerCollector(Collector):
    """``sparktrainer_trainer_jobs_total{status}`` and ``sparktrainer_worker_restarts_total``."""

    def __init__(self, worker: WarmWorker) -> None:
        self.worker = worker

    def collect(self) -> Iterator[Metric]:
        jobs = CounterMetricFamily(
            "sparktrainer_trainer_jobs", "Jobs this trainer's worker ran, by how they ended",
            labels=["status"],
        )  # fmt: skip
        jobs.add_metric(["completed"], self.worker.jobs_completed)
        jobs.add_metric(["failed"], self.worker.jobs_failed)
        jobs.add_metric(["cancelled"], self.worker.jobs_cancelled)
        restarts = CounterMetricFamily(
            "sparktrainer_worker_restarts", "Times the warm training process died and was replaced"
        )
        restarts.add_metric([], self.worker.restarts)
        attempts = CounterMetricFamily(
            "sparktrainer_trainer_attempt_failures",
            "Attempts the worker ended without a model (retried ones too), by reason",
            labels=["reason"],
        )
        for reason, count in sorted(self.worker.failures.items()):
            attempts.add_metric([reason], count)
        yield jobs
        yield restarts
        yield attempts
