"""The API's Prometheus metrics: requests by route and status, their latency, jobs by state."""

from __future__ import annotations

import time
from collections.abc import Awaitable, Callable
from functools import partial
from pathlib import Path

from prometheus_client import Counter, Histogram
from starlette.requests import Request
from starlette.responses import Response

from sparktrainer.registry.store import jobs_by_status
from sparktrainer.telemetry.prometheus import (
    FaultsCollector,
    JobsByState,
    ServiceMetrics,
    Surviving,
)

# A made-up method would add a series per spelling: everything else is one label.
KNOWN_METHODS = frozenset({"GET", "HEAD", "POST", "PUT", "PATCH", "DELETE", "OPTIONS"})
_LATENCY_BUCKETS_S = (0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5)


class ApiMetrics:
    """One app's instruments; ``measure`` is its HTTP middleware."""

    def __init__(self, db_path: Path | str, faults: Surviving) -> None:
        self.requests = Counter(
            "sparktrainer_http_requests",
            "HTTP requests answered, by method, route template and status",
            ["method", "route", "status"],
            registry=None,
        )
        self.latency = Histogram(
            "sparktrainer_http_request_seconds",
            "Time to answer an HTTP request, by route template",
            ["route"],
            buckets=_LATENCY_BUCKETS_S,
            registry=None,
        )
        by_status = partial(jobs_by_status, db_path)
        self.service = ServiceMetrics(
            [self.requests, self.latency, JobsByState(by_status), FaultsCollector(faults)]
        )

    async def measure(
        self, request: Request, call_next: Callable[[Request], Awaitable[Response]]
    ) -> Response:
        """Count and time a request under its route's template (never its raw path)."""
        started = time.perf_counter()
        response = await call_next(request)
        route = getattr(request.scope.get("route"), "path", None) or "unmatched"
        method = request.method if request.method in KNOWN_METHODS else "other"
        self.requests.labels(method, route, str(response.status_code)).inc()
        self.latency.labels(route).observe(time.perf_counter() - started)
        return response
