"""Endpoints under /api/models/{ref}/files: a model's files, listed and streamed from S3.

Both need the bearer token when one is set (files are the model itself). Only the files the
model's registration lists (and its metadata.json) are served; single byte ranges are
honoured (206), several ranges get the whole file (200), as RFC 9110 allows.
"""

from __future__ import annotations

import re
from typing import Any

from fastapi import APIRouter, Depends, Request
from fastapi.responses import JSONResponse, StreamingResponse

from sparktrainer.api.state import ApiError, model_of, require_token, state_of
from sparktrainer.errors import ObjectNotFound
from sparktrainer.registry.files import model_files, served_file
from sparktrainer.storage.s3 import ObjectStore

router = APIRouter(prefix="/api/models", tags=["models"], dependencies=[Depends(require_token)])
_RANGE = re.compile(r"bytes=(\d{0,19})-(\d{0,19})")
_UNSAFE = re.compile(r"[^A-Za-z0-9._-]")


def _usable(request: Request, ref: str) -> tuple[dict[str, Any], ObjectStore]:
    """The model (410 when deleted) and the store (503 without one)."""
    model = model_of(request, ref)
    if model["status"] == "deleted":
        retired = model.get("retired") or {}
        raise ApiError(
            410,
            f"Model '{model['model_id']}' was deleted by {retired.get('deleted_by') or 'someone'}"
            f" at {retired.get('deleted_at') or 'an unknown time'}: its files are not served",
        )
    store = state_of(request).object_store()
    if store is None:
        raise ApiError(503, "No S3 endpoint configured (SPARKTRAINER_S3_ENDPOINT)")
    return model, store


@router.get("/{ref}/files")
def files(request: Request, ref: str) -> JSONResponse:
    """Every file of the model: path, size_bytes, sha256 (metadata.json last)."""
    model, store = _usable(request, ref)
    try:
        listed = model_files(model, store)
    except ObjectNotFound as e:
        raise ApiError(404, f"Model '{model['model_id']}' has no files in the store") from e
    body = [{k: f[k] for k in ("path", "size_bytes", "sha256")} for f in listed]
    return JSONResponse({"model_id": model["model_id"], "files": body})


def byte_range(header: str | None, size: int) -> tuple[int, int] | None:
    """(first, last) of a single ``Range: bytes=`` range; None for the whole file; 416 if bad."""
    if header is None or "," in header:
        return None
    m = _RANGE.fullmatch(header.strip())
    if m is None or m.groups() == ("", ""):
        return None  # not a byte range we read: the whole file
    first, last = m.groups()
    if first == "":  # the last N bytes
        start, end = max(0, size - int(last)), size - 1
    else:
        start, end = int(first), min(int(last), size - 1) if last else size - 1
    if start > end or start >= size:
        raise ApiError(416, f"Range {header[:60]} is outside the file ({size} bytes)",
                       headers={"Content-Range": f"bytes */{size}"})  # fmt: skip
    return start, end


@router.get("/{ref}/files/{path:path}")
def file(request: Request, ref: str, path: str) -> StreamingResponse:
    """One file, streamed from S3 (``Range: bytes=a-b`` gives 206 and that part)."""
    model, store = _usable(request, ref)
    found = served_file(model, path)
    if found is None:
        raise ApiError(404, f"Model '{model['model_id']}' has no file '{path[:200]}'")
    try:
        size = store.size(found["key"])
    except ObjectNotFound as e:
        raise ApiError(404, f"File '{path[:200]}' is not in the store") from e
    span = byte_range(request.headers.get("range"), size)
    start, end = span or (0, size - 1)
    headers = {
        "Accept-Ranges": "bytes",
        "Content-Length": str(end - start + 1 if size else 0),
        "Content-Disposition": f'attachment; filename="{_UNSAFE.sub("_", path.rsplit("/")[-1])}"',
    }
    if found.get("sha256"):
        headers["ETag"] = f'"{found["sha256"]}"'
    if span is not None:
        headers["Content-Range"] = f"bytes {start}-{end}/{size}"
    body = store.stream(found["key"], start, end - start + 1) if size else iter([b""])
    return StreamingResponse(
        body, status_code=206 if span else 200, headers=headers,
        media_type="application/octet-stream",
    )  # fmt: skip
