"""``serve()``: the one start-up of every deployable consumer.

Arguments, settings, logging, topics; then the service is started, and once it is positioned
(partitions assigned, positions known) ``READY name`` goes to stderr (the embedded stack waits
for that line). SIGTERM and SIGINT stop it gracefully. With its metrics port set
(``SPARKTRAINER_{VALIDATOR,TRAINER,PROJECTOR,SWEEP_CONTROLLER}_METRICS_PORT``) the service's
Prometheus metrics are served there; with ``OTEL_EXPORTER_OTLP_ENDPOINT`` set its spans are
exported.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import signal
import sys
from collections.abc import Callable
from typing import Protocol

import structlog

from sparktrainer.bus.kafka import ensure_topics
from sparktrainer.logging import configure
from sparktrainer.settings import Settings
from sparktrainer.telemetry.prometheus import Collector, ServiceMetrics
from sparktrainer.telemetry.tracing import configure_tracing, shutdown_tracing

log = structlog.get_logger(__name__)
READY_TIMEOUT_S = 120.0
# The setting that holds each service's metrics port (0: no metrics server).
METRICS_PORTS = {
    "validator": "validator_metrics_port",
    "trainer": "trainer_metrics_port",
    "registry-projector": "projector_metrics_port",
    "sweep_controller": "sweep_controller_metrics_port",
}


class Service(Protocol):
    """What ``serve`` runs: ``ConsumerRuntime``, ``TrainerService``, the projector's service."""

    async def run(self) -> object:
        """Run until stopped (or done)."""

    async def wait_positioned(self, timeout_s: float) -> None:
        """Return once records produced from now on will be seen."""

    def stop(self) -> None:
        """Stop gracefully."""

    def collectors(self) -> list[Collector]:
        """What Prometheus reads of it."""


def serve(
    name: str,
    build: Callable[[Settings, argparse.Namespace], Service],
    parser: argparse.ArgumentParser | None = None,
    argv: list[str] | None = None,
) -> int:
    """Run the service ``build`` makes from the settings and arguments; the exit code."""
    args = (parser or argparse.ArgumentParser(prog=name)).parse_args(argv)
    settings = Settings()
    configure(settings.log_level)
    structlog.contextvars.bind_contextvars(consumer=name)
    try:
        return asyncio.run(_serve(name, build, settings, args))
    except KeyboardInterrupt:
        return 130


async def _serve(
    name: str,
    build: Callable[[Settings, argparse.Namespace], Service],
    settings: Settings,
    args: argparse.Namespace,
) -> int:
    await ensure_topics(settings)
    configure_tracing(name)
    service = build(settings, args)
    stop_metrics = _serve_metrics(name, settings, service)
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGTERM, signal.SIGINT):
        with contextlib.suppress(NotImplementedError, RuntimeError):
            loop.add_signal_handler(sig, service.stop)
    task = asyncio.create_task(service.run())
    positioned = asyncio.ensure_future(service.wait_positioned(READY_TIMEOUT_S))
    await asyncio.wait([positioned, task], return_when=asyncio.FIRST_COMPLETED)
    if positioned.done() and positioned.exception() is not None:
        log.warning("not_positioned", timeout_s=READY_TIMEOUT_S)
    positioned.cancel()
    if not (task.done() and task.exception() is not None):
        print(f"READY {name}", file=sys.stderr, flush=True)
    try:
        result = await task
    finally:
        if stop_metrics is not None:
            stop_metrics()
        shutdown_tracing()
    return result if isinstance(result, int) else 0


def _serve_metrics(name: str, settings: Settings, service: Service) -> Callable[[], None] | None:
    """Serve the service's Prometheus metrics when its port is set; how to stop them."""
    port = getattr(settings, METRICS_PORTS[name]) if name in METRICS_PORTS else 0
    if not port:
        return None
    return ServiceMetrics(service.collectors()).serve(port, settings.metrics_host)
