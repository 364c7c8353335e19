"""CloudEvents 1.0 over Kafka, through the CloudEvents SDK's Kafka binding.

Out: binary content mode (attributes as ``ce_*`` headers, the event's JSON as the value).
In: binary or structured mode; on the public door also a bare JSON job with no headers at all.
Every byte that arrives is hostile: anything the SDK or JSON refuses becomes an
:class:`EnvelopeError` with a short reason, never another exception.
"""

from __future__ import annotations

import json
import math
import re
from dataclasses import dataclass
from typing import Any

from cloudevents.core.bindings import kafka as ce_kafka
from cloudevents.core.formats.json import JSONFormat
from cloudevents.core.v1.event import CloudEvent
from pydantic import BaseModel, ValidationError

from sparktrainer.contracts.event_base import Event, deterministic_id, now
from sparktrainer.contracts.fitting import HEADROOM_BYTES, MESSAGE_BYTES, fit
from sparktrainer.contracts.submission import JobSubmitted

JSON = "application/json"
STRUCTURED = "application/cloudevents+json"
REPLAY_HEADER = "sparktrainer_replayed_from"
_DECODE_REASON_CHARS = 1000  # why a record did not decode (a failure reason: worker/protocol.py)

Headers = list[tuple[str, bytes]]
_FORMAT = JSONFormat()


@dataclass(frozen=True)
class OutRecord:
    """A record ready for the producer."""

    topic: str
    key: bytes
    value: bytes
    headers: Headers


class EnvelopeError(ValueError):
    """A record that is not a readable event of the expected kind."""


def encode(
    event: BaseModel, source: str, event_id: str | None = None, max_bytes: int = MESSAGE_BYTES
) -> OutRecord:
    """Binary-mode CloudEvent: attributes as ``ce_*`` headers, data as the JSON value.

    An event of ours is first fitted to ``max_bytes`` (the broker's message limit).
    """
    value = event.model_dump_json(exclude_none=False).encode()
    if isinstance(event, Event) and len(value) > max_bytes - HEADROOM_BYTES:
        event = fit(event, max_bytes)
        value = event.model_dump_json(exclude_none=False).encode()
    if isinstance(event, Event):
        subject, ce_id = event.subject(), event_id or event.event_id()
        key = event.partition_key()
    elif isinstance(event, JobSubmitted):
        subject = key = event.job_id or ""
        ce_id = event_id or deterministic_id(JobSubmitted.ce_type, subject or now().isoformat())
    else:  # pragma: no cover - programming error
        raise TypeError(f"not an event: {type(event).__name__}")
    attributes: dict[str, Any] = {
        "id": ce_id,
        "source": source,
        "type": type(event).ce_type,  # type: ignore[attr-defined]
        "time": now(),
        "datacontenttype": JSON,
    }
    if subject:
        attributes["subject"] = subject
    message = ce_kafka.to_binary(CloudEvent(attributes, value), _FORMAT, lambda _: None)
    topic = event.home_topic() if isinstance(event, Event) else JobSubmitted.topic
    return OutRecord(topic, key.encode(), value, list(message.headers.items()))


def header_map(headers: Any) -> dict[str, str]:
    """Kafka headers as a dict of text (names lowercased, last one wins, bad bytes replaced)."""
    out: dict[str, str] = {}
    for name, raw in headers or ():
        if raw is None:
            continue
        out[str(name).lower()] = bytes(raw).decode("utf-8", errors="replace")
    return out


def unwrap(value: bytes | None, headers: Any) -> tuple[dict[str, str], Any]:
    """Split a record into CloudEvents attributes and its decoded JSON data.

    Binary mode (``ce_*`` headers) and structured mode (``application/cloudevents+json``,
    or a value that is a CloudEvent object) go through the SDK; bare JSON has no attributes.
    """
    if value is None:
        raise EnvelopeError("record has no value (a tombstone): expected a JSON object")
    raw_headers = _header_bytes(headers)
    try:
        if any(name.startswith("ce_") for name in raw_headers):
            # The SDK reads the attributes (the headers) only: the value is the data, read
            # once, strictly, here (the SDK's own reading of it was a second JSON parse).
            event = _from_sdk(ce_kafka.from_binary, b"", raw_headers)
            return _attributes(event), _json(value)
        data = _json(value)
        if STRUCTURED in raw_headers.get("content-type", b"").decode(errors="replace") or (
            _looks_structured(data)
        ):
            event = _from_sdk(ce_kafka.from_structured, value, raw_headers)
            return _attributes(event), event.get_data()
        return {}, data
    except RecursionError as e:
        raise EnvelopeError("value is nested too deeply to read") from e


def _header_bytes(headers: Any) -> dict[str, bytes]:
    out: dict[str, bytes] = {}
    for name, raw in headers or ():
        if raw is not None:
            out[str(name).lower()] = bytes(raw)
    return out


def _from_sdk(parse: Any, value: bytes, headers: dict[str, bytes]) -> CloudEvent:
    """The SDK's reading of the envelope; whatever it refuses is an EnvelopeError."""
    try:
        event: CloudEvent = parse(ce_kafka.KafkaMessage(headers, None, value), _FORMAT, CloudEvent)
    except RecursionError:
        raise
    except Exception as e:  # the SDK raises its own, ValueError, UnicodeError, TypeError...
        raise EnvelopeError(f"not a readable CloudEvent: {_reason(e)}") from e
    return event


def _attributes(event: CloudEvent) -> dict[str, str]:
    return {k: str(v) for k, v in event.get_attributes().items() if v is not None}


def _no_constant(name: str) -> Any:
    raise ValueError(f"{name} is not JSON (only finite numbers are)")


def _finite_float(text: str) -> float:
    number = float(text)
    if not math.isfinite(number):  # 1e999 reads as infinity
        raise ValueError(f"{text[:40]} is out of range for a number")
    return number


# A lone surrogate can only come in as a ``\\uD800``-style escape (UTF-8 cannot carry one).
_SURROGATE_ESCAPE = re.compile(rb"\\u[dD][89a-fA-F]")


def strict_json(value: bytes | str) -> Any:
    """JSON as RFC 8259 has it: NaN, Infinity, numbers that overflow to them, and strings with
    a lone surrogate (no UTF-8 can write them back) are refused."""
    data = json.loads(value, parse_constant=_no_constant, parse_float=_finite_float)
    suspect = not value.isascii() if isinstance(value, str) else False
    if suspect or _SURROGATE_ESCAPE.search(value.encode() if isinstance(value, str) else value):
        try:
            json.dumps(data, ensure_ascii=False).encode("utf-8")
        except UnicodeEncodeError as e:
            raise ValueError("a string holds a lone surrogate (\\uD800-\\uDFFF unpaired)") from e
    return data


def _json(value: bytes) -> Any:
    try:
        return strict_json(value)
    except (ValueError, RecursionError) as e:  # JSONDecodeError, bad UTF-8, huge ints, NaN
        raise EnvelopeError(f"value is not valid JSON ({_reason(e)})"[:300]) from e


def _reason(error: BaseException) -> str:
    return f"{type(error).__name__}: {error}"[:_DECODE_REASON_CHARS]


def _looks_structured(data: Any) -> bool:
    return isinstance(data, dict) and "specversion" in data and "type" in data and "data" in data


def decode(
    value: bytes | None,
    headers: Any,
    expected: type[BaseModel] | None = None,
    topic: str | None = None,
) -> Any:
    """Decode one of our own events; ``expected`` pins the class when headers lack a type.

    With ``topic`` (where the record was read) an event is accepted only on its own topic: a
    model-registered event on jobs.lifecycle is not a registration.
    """
    # Every event class, loaded by the first decode: a process that only encodes (a CLI
    # submit) never builds the models it does not send.
    from sparktrainer.contracts.catalog import EVENT_CLASSES

    attrs, data = unwrap(value, headers)
    cls = EVENT_CLASSES.get(attrs.get("type", ""), expected)
    if cls is None:
        raise EnvelopeError(f"unknown CloudEvents type {attrs.get('type', '')[:120]!r}")
    if expected is not None and not issubclass(cls, expected):
        raise EnvelopeError(f"expected {expected.__name__}, got {attrs.get('type', '')[:120]!r}")
    homes = cls.topics() if hasattr(cls, "topics") else (getattr(cls, "topic", None),)
    if topic is not None and topic not in homes:
        home = homes[0] if len(homes) == 1 else f"one of {len(homes)} topics"
        raise EnvelopeError(f"a {cls.__name__} belongs on {home}, not on {topic[:120]}")
    try:
        return cls.model_validate(data)
    except (ValidationError, ValueError, TypeError, RecursionError) as e:
        raise EnvelopeError(f"invalid {cls.__name__}: {_reason(e)}") from e
