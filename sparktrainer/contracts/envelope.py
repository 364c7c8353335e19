"""CloudEvents 1.0 over Kafka: binary mode out, binary or structured mode in."""

from __future__ import annotations

import json
from dataclasses import dataclass
from typing import Any

from pydantic import BaseModel, ValidationError

from sparktrainer.contracts.events import EVENT_TYPES, Event, JobSubmitted, deterministic_id, now

SPEC_VERSION = b"1.0"
JSON = "application/json"
STRUCTURED = "application/cloudevents+json"
REPLAY_HEADER = "sparktrainer_replayed_from"

Headers = list[tuple[str, bytes]]


@dataclass(frozen=True)
class OutRecord:
    """A record ready for the producer."""

    topic: str
    key: bytes
    value: bytes
    headers: Headers


class EnvelopeError(ValueError):
    """A record that is not a readable event of the expected kind."""


def encode(event: BaseModel, source: str, event_id: str | None = None) -> OutRecord:
    """Binary-mode CloudEvent: attributes as ``ce_*`` headers, data as the JSON value."""
    if isinstance(event, Event):
        subject, ce_id = event.subject(), event_id or event.event_id()
    elif isinstance(event, JobSubmitted):
        subject = event.job_id or ""
        ce_id = event_id or deterministic_id(JobSubmitted.ce_type, subject or now().isoformat())
    else:  # pragma: no cover - programming error
        raise TypeError(f"not an event: {type(event).__name__}")
    ce_type: str = type(event).ce_type  # type: ignore[attr-defined]
    topic: str = type(event).topic  # type: ignore[attr-defined]
    headers: Headers = [
        ("ce_specversion", SPEC_VERSION),
        ("ce_id", ce_id.encode()),
        ("ce_source", source.encode()),
        ("ce_type", ce_type.encode()),
        ("ce_time", now().isoformat().encode()),
        ("content-type", JSON.encode()),
    ]
    if subject:
        headers.append(("ce_subject", subject.encode()))
    value = event.model_dump_json(exclude_none=False).encode()
    return OutRecord(topic=topic, key=subject.encode(), value=value, headers=headers)


def header_map(headers: Any) -> dict[str, str]:
    """Kafka headers as a dict of text (last one wins, undecodable bytes replaced)."""
    out: dict[str, str] = {}
    for name, raw in headers or ():
        if raw is None:
            continue
        out[str(name).lower()] = bytes(raw).decode("utf-8", errors="replace")
    return out


def unwrap(value: bytes | None, headers: Any) -> tuple[dict[str, str], Any]:
    """Split a record into CloudEvents attributes and its decoded JSON data.

    Binary mode: attributes from ``ce_*`` headers. Structured mode: the value is a CloudEvent
    object whose ``data`` is the payload. Bare JSON: no attributes at all.
    """
    attrs = {k[3:]: v for k, v in header_map(headers).items() if k.startswith("ce_")}
    content_type = header_map(headers).get("content-type", "")
    if value is None:
        raise EnvelopeError("record has no value (a tombstone): expected a JSON object")
    try:
        data = json.loads(value)
    except (ValueError, RecursionError) as e:  # JSONDecodeError, bad UTF-8, huge ints
        raise EnvelopeError(f"value is not valid JSON ({e.__class__.__name__}: {e})"[:300]) from e
    if STRUCTURED in content_type or _looks_structured(data, attrs):
        attrs = {k: str(v) for k, v in data.items() if k != "data" and not isinstance(v, dict)}
        data = data.get("data")
    return attrs, data


def _looks_structured(data: Any, attrs: dict[str, str]) -> bool:
    return (
        not attrs
        and isinstance(data, dict)
        and "specversion" in data
        and "type" in data
        and "data" in data
    )


def decode(value: bytes | None, headers: Any, expected: type[BaseModel] | None = None) -> Any:
    """Decode one of our own events; ``expected`` pins the class when headers lack a type."""
    attrs, data = unwrap(value, headers)
    cls = EVENT_TYPES.get(attrs.get("type", ""), expected)
    if cls is None:
        raise EnvelopeError(f"unknown CloudEvents type '{attrs.get('type')}'")
    if expected is not None and not issubclass(cls, expected):
        raise EnvelopeError(f"expected {expected.__name__}, got '{attrs.get('type')}'")
    try:
        return cls.model_validate(data)
    except ValidationError as e:
        raise EnvelopeError(f"invalid {cls.__name__}: {e}"[:1000]) from e
