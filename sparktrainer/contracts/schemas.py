"""JSON Schema of every event and an AsyncAPI 3.0 document, generated from the models."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from pydantic import BaseModel, TypeAdapter

from sparktrainer import __version__
from sparktrainer.contracts import topics
from sparktrainer.contracts.catalog import CONTRACT_EVENTS
from sparktrainer.contracts.event_base import Event
from sparktrainer.contracts.kinds import JobConfig

EVENTS: tuple[type[BaseModel], ...] = CONTRACT_EVENTS


def _name(cls: type[BaseModel]) -> str:
    return cls.ce_type.removeprefix("io.sparktrainer.")  # type: ignore[attr-defined, no-any-return]


def topics_of(cls: type[BaseModel]) -> tuple[str, ...]:
    """Every topic events of this class are sent to (a validated job: its route's)."""
    return cls.topics() if issubclass(cls, Event) else (cls.topic,)  # type: ignore[attr-defined]


def event_schema(cls: type[BaseModel]) -> dict[str, Any]:
    """The JSON Schema of one event's data, with its CloudEvents type and topic."""
    schema = cls.model_json_schema(mode="serialization")
    schema["$schema"] = "https://json-schema.org/draft/2020-12/schema"
    schema["$id"] = f"https://sparktrainer.io/schemas/{_name(cls)}.json"
    schema["x-cloudevents-type"] = cls.ce_type  # type: ignore[attr-defined]
    schema["x-kafka-topic"] = cls.topic  # type: ignore[attr-defined]
    if len(topics_of(cls)) > 1:
        schema["x-kafka-topics"] = list(topics_of(cls))
    return schema


def asyncapi() -> dict[str, Any]:
    """An AsyncAPI 3.0 document: one channel per topic, one message per event type."""
    channels: dict[str, Any] = {}
    operations: dict[str, Any] = {}
    messages: dict[str, Any] = {}
    for topic in topics.ALL_TOPICS:
        channel_id = topic.removeprefix("sparktrainer.").replace(".", "-")
        refs = {}
        for cls in (c for c in EVENTS if topic in topics_of(c)):
            msg_id = _name(cls).replace(".", "-")
            messages[msg_id] = _message(cls)
            refs[msg_id] = {"$ref": f"#/components/messages/{msg_id}"}
        channels[channel_id] = {
            "address": topic,
            "description": topics.DESCRIPTIONS[topic],
            "messages": refs,
        }
        operations[f"publish-{channel_id}"] = {
            "action": "send",
            "channel": {"$ref": f"#/channels/{channel_id}"},
        }
    return {
        "asyncapi": "3.0.0",
        "info": {
            "title": "SparkTrainer events",
            "version": __version__,
            "description": "CloudEvents 1.0 in Kafka binary content mode: ce_* headers, "
            "JSON value. jobs.submitted also accepts structured mode and bare JSON.",
        },
        "defaultContentType": "application/json",
        "channels": channels,
        "operations": operations,
        "components": {"messages": messages},
    }


def _message(cls: type[BaseModel]) -> dict[str, Any]:
    return {
        "name": cls.__name__,
        "title": cls.ce_type,  # type: ignore[attr-defined]
        "summary": (cls.__doc__ or "").strip().splitlines()[0],
        "contentType": "application/json",
        "headers": {
            "type": "object",
            "properties": {
                "ce_specversion": {"const": "1.0"},
                "ce_type": {"const": cls.ce_type},  # type: ignore[attr-defined]
                "ce_id": {"type": "string"},
                "ce_source": {"type": "string"},
                "ce_time": {"type": "string", "format": "date-time"},
                "ce_subject": {"type": "string"},
            },
        },
        "payload": {"$ref": f"{_name(cls)}.json"},
        "bindings": {"kafka": {"key": {"type": "string", "description": _key(cls)}}},
    }


def _key(cls: type[BaseModel]) -> str:
    if cls.topic == topics.MODELS_REGISTERED:  # type: ignore[attr-defined]
        return "registered name when the model has one, else model id"
    if cls.topic == topics.MODELS_CHANGES:  # type: ignore[attr-defined]
        return "model name (aliases) or model id (retirement)"
    return "job id"


def config_schema() -> dict[str, Any]:
    """The JSON Schema of a job's ``config``: one variant per architecture or model source."""
    schema = TypeAdapter(JobConfig).json_schema(mode="serialization")
    schema["$schema"] = "https://json-schema.org/draft/2020-12/schema"
    schema["$id"] = "https://sparktrainer.io/schemas/job-config.json"
    schema["description"] = (
        "config of a job: one variant per job kind (contracts/kinds.py). PyTorch: "
        "'architecture' custom|resnet, or 'model_source' torchvision|model_id; Hugging Face: "
        "model_source huggingface|local|model_id"
    )
    return schema


def render() -> dict[str, str]:
    """File name -> exact text of everything under schemas/."""
    files = {f"{_name(c)}.json": event_schema(c) for c in EVENTS}
    files["job-config.json"] = config_schema()
    files["asyncapi.json"] = asyncapi()
    return {name: json.dumps(doc, indent=2, sort_keys=True) + "\n" for name, doc in files.items()}


def write(folder: Path) -> list[Path]:
    """Write the schemas; returns the paths written."""
    folder.mkdir(parents=True, exist_ok=True)
    written = []
    for name, text in render().items():
        path = folder / name
        path.write_text(text)
        written.append(path)
    return written
