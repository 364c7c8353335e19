"""Prometheus metrics: one registry per service, its collectors, and the port it is served on.

Counters that tests already read (the runtime's, the projector's, the worker's) are not
duplicated: collectors read them at scrape time. What only exists as an observation (how
long a job waited for its first step, a step, a checkpoint upload) is a histogram the service
feeds. Every metric is named ``sparktrainer_*`` and carries the service's name as ``consumer``
where several services report the same thing.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Callable, Iterable, Iterator, Mapping
from typing import Protocol

import structlog
from prometheus_client import CollectorRegistry, generate_latest, start_http_server
from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily, Metric
from prometheus_client.registry import Collector

log = structlog.get_logger(__name__)
CONTENT_TYPE = "text/plain; version=0.0.4; charset=utf-8"

TopicCounts = Counter[tuple[str, str]]
"""Records by (topic, outcome): what a consumer did with what it read."""


class Consuming(Protocol):
    """What a consumer shows: records by topic and outcome, and its lag per partition."""

    counts: TopicCounts

    def lag(self) -> Mapping[tuple[str, int], int]: ...


class ConsumerCollector(Collector):
    """``sparktrainer_records_total`` and ``sparktrainer_consumer_lag_records`` of consumers.

    One collector for all of a process's consumers (by name): a registry takes each metric
    name from one collector only.
    """

    def __init__(self, sources: Mapping[str, Consuming]) -> None:
        self.sources = dict(sources)

    def collect(self) -> Iterator[Metric]:
        records = CounterMetricFamily(
            "sparktrainer_records",
            "Records a consumer read, by topic and what came of them",
            labels=["consumer", "topic", "outcome"],
        )
        for consumer, source in self.sources.items():
            for (topic, outcome), n in sorted(dict(source.counts).items()):
                records.add_metric([consumer, topic, outcome], n)
        lag = GaugeMetricFamily(
            "sparktrainer_consumer_lag_records",
            "Records on a partition not yet handled (log end at the last fetch minus position)",
            labels=["consumer", "topic", "partition"],
        )
        for consumer, source in self.sources.items():
            for (topic, partition), n in sorted(dict(source.lag()).items()):
                lag.add_metric([consumer, topic, str(partition)], n)
        yield records
        yield lag


class JobsByState(Collector):
    """``sparktrainer_jobs{state}``: jobs in the read model by status, counted at scrape time."""

    def __init__(self, count: Callable[[], Mapping[str, int]]) -> None:
        self.count = count

    def collect(self) -> Iterator[Metric]:
        jobs = GaugeMetricFamily(
            "sparktrainer_jobs", "Jobs in the registry read model by state", labels=["state"]
        )
        try:
            counted = dict(self.count())
        except Exception as e:  # the read model is busy or being rebuilt: skip this scrape
            log.warning("jobs_by_state_unavailable", error=f"{type(e).__name__}: {e}"[:200])
            counted = {}
        for state, n in sorted(counted.items()):
            jobs.add_metric([state], n)
        yield jobs


class Surviving(Protocol):
    """What a process's background tasks survived (``bus/supervise.py`` Faults)."""

    errors: Counter[tuple[str, str]]
    restarts: Counter[str]


class FaultsCollector(Collector):
    """``sparktrainer_background_errors_total{task,error}`` (exceptions a background task got
    past, a record skipped or the task restarted) and ``..._restarts_total{task}``."""

    def __init__(self, faults: Surviving) -> None:
        self.faults = faults

    def collect(self) -> Iterator[Metric]:
        errors = CounterMetricFamily(
            "sparktrainer_background_errors",
            "Exceptions background tasks survived, by task and error type",
            labels=["task", "error"],
        )
        for (task, error), n in sorted(dict(self.faults.errors).items()):
            errors.add_metric([task, error], n)
        restarts = CounterMetricFamily(
            "sparktrainer_background_restarts",
            "Background tasks that died and were started again",
            labels=["task"],
        )
        for task, n in sorted(dict(self.faults.restarts).items()):
            restarts.add_metric([task], n)
        yield errors
        yield restarts


class IgnoredCancels(Collector):
    """``sparktrainer_cancels_ignored_total``: cancels that asked for another tenant than the
    job's or sweep's (issue 17), read from ``count`` at scrape time."""

    def __init__(self, count: Callable[[], int]) -> None:
        self.count = count

    def collect(self) -> Iterator[Metric]:
        ignored = CounterMetricFamily(
            "sparktrainer_cancels_ignored",
            "Cancels ignored because their tenant is not the job's (or the sweep's)",
        )
        ignored.add_metric([], self.count())
        yield ignored


class ServiceMetrics:
    """One service's registry (never the process-global one: tests run several in a process)."""

    def __init__(self, collectors: Iterable[Collector] = ()) -> None:
        self.registry = CollectorRegistry(auto_describe=True)
        for collector in collectors:
            self.registry.register(collector)

    def exposition(self) -> bytes:
        """The registry in Prometheus text format."""
        return generate_latest(self.registry)

    def serve(self, port: int, host: str) -> Callable[[], None]:
        """Serve ``/metrics`` on ``host:port`` in a thread; returns how to stop it."""
        server, thread = start_http_server(port, addr=host, registry=self.registry)
        log.info("metrics_serving", host=host, port=server.server_port)

        def stop() -> None:
            server.shutdown()
            server.server_close()
            thread.join(5)

        return stop
