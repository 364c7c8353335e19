"""W3C trace context on our events: the CloudEvents distributed-tracing extension.

A job's events all carry one ``traceparent`` (in Kafka binary mode the ``ce_traceparent``
header): the submission's when it has one (the API and CLI give theirs), else a trace id
derived from the job id, so every redelivery of a job lands in the same trace. The parent id
in it names the span that produced the event (the validator's, the trainer's). A header that
is not a valid W3C ``traceparent`` is ignored, like any other hostile byte.
"""

from __future__ import annotations

import hashlib
import re
import secrets
from dataclasses import dataclass, replace

from sparktrainer.contracts.envelope import Headers, OutRecord

HEADER = "ce_traceparent"  # the CloudEvents Kafka binding's name for the extension attribute
PLAIN_HEADER = "traceparent"  # what W3C-minded producers put on Kafka records
_FORMAT = re.compile(r"^([0-9a-f]{2})-([0-9a-f]{32})-([0-9a-f]{16})-([0-9a-f]{2})$")
_MAX_HEADER_BYTES = 512


@dataclass(frozen=True)
class TraceContext:
    """One W3C trace context: the trace, the span that is the parent, and the sampled flag."""

    trace_id: str
    span_id: str
    sampled: bool = True

    @classmethod
    def parse(cls, text: str | bytes | None) -> TraceContext | None:
        """A ``traceparent`` value, or None when it is absent or not valid W3C."""
        if isinstance(text, bytes):
            if len(text) > _MAX_HEADER_BYTES:
                return None
            text = text.decode("ascii", errors="replace")
        if not text or len(text) > _MAX_HEADER_BYTES:
            return None
        found = _FORMAT.match(text.strip())
        if found is None:
            return None
        version, trace_id, span_id, flags = found.groups()
        if version == "ff" or set(trace_id) == {"0"} or set(span_id) == {"0"}:
            return None
        return cls(trace_id, span_id, bool(int(flags, 16) & 1))

    @classmethod
    def new(cls) -> TraceContext:
        """A fresh trace (a submission from the API or the CLI)."""
        return cls(secrets.token_hex(16), secrets.token_hex(8))

    @classmethod
    def for_job(cls, job_id: str) -> TraceContext:
        """The trace of a job whose submission carried none: the same for every redelivery."""
        digest = hashlib.sha256(f"sparktrainer-trace/{job_id}".encode()).hexdigest()
        return cls(digest[:32], digest[32:48])

    def child(self, span_id: str | None = None) -> TraceContext:
        """The same trace with another span as the parent (a new random one by default)."""
        return replace(self, span_id=span_id or secrets.token_hex(8))

    def header(self) -> str:
        """The ``traceparent`` text: ``00-<trace>-<span>-<flags>``."""
        return f"00-{self.trace_id}-{self.span_id}-{'01' if self.sampled else '00'}"


def trace_of(headers: Headers | tuple[tuple[str, bytes], ...] | None) -> TraceContext | None:
    """The trace context a consumed record carries (``ce_traceparent``, else ``traceparent``)."""
    found: dict[str, bytes] = {}
    for name, raw in headers or ():
        if raw is not None and str(name).lower() in (HEADER, PLAIN_HEADER):
            found[str(name).lower()] = bytes(raw)
    for name in (HEADER, PLAIN_HEADER):
        context = TraceContext.parse(found.get(name))
        if context is not None:
            return context
    return None


def job_trace(headers: Headers | tuple[tuple[str, bytes], ...] | None, job_id: str) -> TraceContext:
    """The trace a record carries, else the job's own (the same on every redelivery)."""
    return trace_of(headers) or TraceContext.for_job(job_id)


def traced(record: OutRecord, context: TraceContext | None) -> OutRecord:
    """``record`` carrying ``context`` as its ``ce_traceparent`` (replacing any it had)."""
    if context is None:
        return record
    headers = [(k, v) for k, v in record.headers if k.lower() not in (HEADER, PLAIN_HEADER)]
    headers.append((HEADER, context.header().encode()))
    return replace(record, headers=headers)
