"""OpenTelemetry spans, exported when ``OTEL_EXPORTER_OTLP_ENDPOINT`` is set (else untouched).

``span(name, parent)`` is the one way services open a span: with the SDK configured it is a
real span under the remote parent the event carried, exported over OTLP/HTTP; without, no
OpenTelemetry code runs and it only gives the trace a new span id. Either way it yields the
``TraceContext`` to put on the events the span produces.
"""

from __future__ import annotations

import contextlib
import os
from collections.abc import Iterator
from typing import Any

import structlog

from sparktrainer.contracts.trace import TraceContext

log = structlog.get_logger(__name__)
ENDPOINT_VARIABLES = ("OTEL_EXPORTER_OTLP_ENDPOINT", "OTEL_EXPORTER_OTLP_TRACES_ENDPOINT")
_tracer: Any = None


def configure_tracing(service: str) -> bool:
    """Export spans over OTLP/HTTP when an endpoint is set; whether tracing is on."""
    global _tracer
    if _tracer is not None or not any(os.environ.get(v) for v in ENDPOINT_VARIABLES):
        return _tracer is not None
    from opentelemetry import trace
    from opentelemetry.exporter.otlp.proto.http.trace_exporter import OTLPSpanExporter
    from opentelemetry.sdk.resources import Resource
    from opentelemetry.sdk.trace import TracerProvider
    from opentelemetry.sdk.trace.export import BatchSpanProcessor

    resource = Resource.create({"service.name": os.environ.get("OTEL_SERVICE_NAME", service)})
    provider = TracerProvider(resource=resource)
    provider.add_span_processor(BatchSpanProcessor(OTLPSpanExporter()))
    trace.set_tracer_provider(provider)
    _tracer = trace.get_tracer("sparktrainer")
    log.info("tracing_on", service=service)
    return True


def shutdown_tracing() -> None:
    """Export what is buffered and stop (the SDK also does it at exit)."""
    global _tracer
    if _tracer is None:
        return
    from opentelemetry import trace

    provider = trace.get_tracer_provider()
    shutdown = getattr(provider, "shutdown", None)
    if shutdown is not None:
        shutdown()
    _tracer = None


@contextlib.contextmanager
def span(
    name: str, parent: TraceContext, start_ns: int | None = None, **attributes: str | int
) -> Iterator[TraceContext]:
    """A span under ``parent`` (from ``start_ns``, default now); yields the context naming it."""
    if _tracer is None:
        yield parent.child()
        return
    from opentelemetry import trace
    from opentelemetry.trace import NonRecordingSpan, SpanContext, TraceFlags

    remote = SpanContext(
        int(parent.trace_id, 16),
        int(parent.span_id, 16),
        is_remote=True,
        trace_flags=TraceFlags(TraceFlags.SAMPLED if parent.sampled else TraceFlags.DEFAULT),
    )
    context = trace.set_span_in_context(NonRecordingSpan(remote))
    opened = _tracer.start_as_current_span(
        name, context=context, attributes=attributes, start_time=start_ns
    )
    with opened as current:
        own = current.get_span_context()
        yield TraceContext(f"{own.trace_id:032x}", f"{own.span_id:016x}", parent.sampled)
