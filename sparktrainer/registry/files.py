"""A registered model's files as the API and the CLI serve them: name, size, sha256, key.

The files are the artifacts its registration lists (each with the sha256 the trainer
computed) and ``metadata.json``, which is written after the registration is formed and so is
hashed here, when listed. A name not on this list is never served.
"""

from __future__ import annotations

import hashlib
from typing import Any

from sparktrainer.registry.rows import Row
from sparktrainer.storage.layout import METADATA, model_key
from sparktrainer.storage.s3 import ObjectStore

MAX_METADATA_BYTES = 1 << 20


def _artifacts(model: Row) -> list[dict[str, Any]]:
    """The registration's files that stay inside ``models/{id}/`` (the event is not trusted)."""
    out = []
    for a in model["artifacts"]:
        try:
            key = model_key(model["model_id"], str(a["path"]))
        except ValueError:
            continue
        if a["path"] != METADATA:
            out.append({"path": a["path"], "size_bytes": a["size_bytes"], "sha256": a["sha256"],
                        "key": key})  # fmt: skip
    return out


def model_files(model: Row, store: ObjectStore) -> list[dict[str, Any]]:
    """Every file of a model (path, size_bytes, sha256, key), metadata.json last."""
    files = _artifacts(model)
    key = model_key(model["model_id"], METADATA)
    meta = store.get_bytes(key)
    if len(meta) <= MAX_METADATA_BYTES:
        digest = hashlib.sha256(meta).hexdigest()
        files.append({"path": METADATA, "size_bytes": len(meta), "sha256": digest, "key": key})
    return files


def served_file(model: Row, path: str) -> dict[str, Any] | None:
    """The registered file at ``path`` (metadata.json included), or None: never a free key."""
    if path == METADATA:
        return {"path": METADATA, "key": model_key(model["model_id"], METADATA), "sha256": None}
    return next((f for f in _artifacts(model) if f["path"] == path), None)
