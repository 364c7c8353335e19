"""The public door: turn any record on jobs.submitted into exactly one verdict.

Forgiving on purpose: binary-mode CloudEvents, structured-mode CloudEvents and a bare JSON job
typed into a Kafka UI (no key, no headers) are all submissions. Anything else is answered
with a rejected event that says why and where the record came from.
"""

from __future__ import annotations

import re
from typing import Any

from sparktrainer.bus.runtime import Received
from sparktrainer.contracts.envelope import (
    REPLAY_HEADER,
    EnvelopeError,
    OutRecord,
    encode,
    header_map,
    unwrap,
)
from sparktrainer.contracts.events import (
    JobRejected,
    JobValidated,
    RecordSource,
    derived_job_id,
)
from sparktrainer.contracts.jobspec import check_safe_id
from sparktrainer.settings import Limits
from sparktrainer.storage.s3 import ObjectStore
from sparktrainer.validation.checks import ValidationResult, validate_job

SOURCE = "sparktrainer/validator"
_EXCERPT_BYTES = 200
_PRINTABLE = re.compile(r"[^\x20-\x7e]")


def source_of(rec: Received) -> RecordSource:
    """The record's coordinates, for the rejected event."""
    return RecordSource(
        topic=rec.topic,
        partition=rec.partition,
        offset=rec.offset,
        key=_text(rec.key),
        timestamp_ms=rec.timestamp_ms,
    )


def _text(raw: bytes | None) -> str | None:
    if raw is None:
        return None
    return raw[:256].decode("utf-8", errors="replace")


def job_id_for(rec: Received, body: Any) -> tuple[str, list[str]]:
    """Body's job_id, else the record key, else one derived from the coordinates."""
    warnings: list[str] = []
    if isinstance(body, dict) and isinstance(body.get("job_id"), str):
        try:
            return check_safe_id(body["job_id"]), warnings
        except ValueError:
            pass  # reported by the request model; fall through to a usable id
    key = _text(rec.key)
    if key:
        try:
            return check_safe_id(key), warnings
        except ValueError:
            warnings.append(f"record key {key[:40]!r} is not a valid job id; a derived id is used")
    return derived_id(rec), warnings


def derived_id(rec: Received) -> str:
    """The id of a submission that names none: from where it first landed.

    A replayed record (``sparktrainer replay``) names its origin in a header; deriving from
    the replay's own offset would make a replay of the topic a second job and a second model.
    """
    origin = header_map(rec.headers).get(REPLAY_HEADER, "")
    topic, _, rest = origin.rpartition("/")
    topic, _, partition = topic.rpartition("/")
    if topic and partition.isdigit() and rest.isdigit():
        return derived_job_id(topic, int(partition), int(rest))
    return derived_job_id(rec.topic, rec.partition, rec.offset)


def decide(rec: Received, store: ObjectStore | None, limits: Limits) -> JobValidated | JobRejected:
    """The verdict on one record: validated with its normalized config, or rejected."""
    size = len(rec.value or b"")
    if size > limits.submission_bytes:
        return _rejected(
            rec,
            None,
            [
                f"Submission is {size} bytes, above the limit of {limits.submission_bytes} bytes: "
                "send data by reference (an s3:// URI in config.data.source), not inline"
            ],
        )
    try:
        _, body = unwrap(rec.value, rec.headers)
    except EnvelopeError as e:
        return _rejected(rec, None, [f"Submission could not be read: {e}"])
    job_id, warnings = job_id_for(rec, body)
    result = validate_job(body, store, limits)
    result.warnings[:0] = warnings
    if not result.valid:
        return _rejected(rec, job_id, result.errors, result)
    return _validated(rec, job_id, result)


def _validated(rec: Received, job_id: str, result: ValidationResult) -> JobValidated:
    assert result.request is not None and result.config is not None
    req, cfg = result.request, result.config
    return JobValidated(
        job_id=job_id,
        name=req.name or f"{req.framework}-{req.type}-{job_id[:12]}",
        type=req.type,  # type: ignore[arg-type]  # checked against JOB_TYPES
        framework=req.framework,  # type: ignore[arg-type]  # checked against FRAMEWORKS_RUN
        config_kind=cfg.kind,
        config=cfg.model_dump(mode="json"),
        description=req.description,
        tags=req.tags,
        license=req.license,
        domain=req.domain,
        submitted_by=req.submitted_by,
        warnings=result.warnings,
        source=source_of(rec),
    )


def _rejected(
    rec: Received, job_id: str | None, errors: list[str], result: ValidationResult | None = None
) -> JobRejected:
    raw = rec.value or b""
    name = result.request.name if result and result.request else None
    return JobRejected(
        job_id=job_id or derived_id(rec),
        errors=errors,
        warnings=result.warnings if result else [],
        name=name,
        source=source_of(rec),
        raw_excerpt=_PRINTABLE.sub("?", raw[:_EXCERPT_BYTES].decode("utf-8", errors="replace")),
    )


def answer(rec: Received, store: ObjectStore | None, limits: Limits) -> list[OutRecord]:
    """The one output record for an input record."""
    return [encode(decide(rec, store, limits), SOURCE)]
