"""What a job trained on: the data source and, for S3 objects, which bytes exactly.

An ``s3://`` key can be overwritten, so a model's lineage records each object it read: its
size, the ETag and version id the server answered with those bytes, and the sha256 of the
bytes themselves (hashed while they were read, never by a second download). A built-in set
(``synthetic``, ``digits``) is named with the parameters that sample it. The identity travels
in ``model.registered`` (and so in ``metadata.json`` and the read model).
"""

from __future__ import annotations

import hashlib
from typing import Literal

from pydantic import BaseModel, ConfigDict, Field

MAX_LISTED_OBJECTS = 100  # an image folder lists its first objects; ``sha256`` covers them all


class DataObject(BaseModel):
    """One S3 object a job read, as it was when read."""

    model_config = ConfigDict(extra="forbid")

    uri: str = Field(max_length=1100, description="s3://bucket/key")
    size_bytes: int = Field(ge=0)
    sha256: str = Field(pattern=r"^[0-9a-f]{64}$")
    etag: str | None = Field(default=None, max_length=128)
    version_id: str | None = Field(default=None, max_length=256)


class DataIdentity(BaseModel):
    """The data a model was trained on: a built-in set and its sampling, or S3 objects."""

    model_config = ConfigDict(extra="forbid")

    source: str = Field(max_length=1100)
    kind: Literal["builtin", "s3"]
    sampling: dict[str, int | float | str] = Field(
        default_factory=dict, description="What picks and splits the samples (seed, split...)"
    )
    sha256: str | None = Field(
        default=None, description="S3: the objects' sha256, one digest over every object read"
    )
    size_bytes: int = Field(default=0, ge=0)
    object_count: int = Field(default=0, ge=0)
    objects: list[DataObject] = Field(default_factory=list, max_length=MAX_LISTED_OBJECTS)


def s3_identity(
    source: str, objects: list[DataObject], sampling: dict[str, int | float | str]
) -> DataIdentity:
    """The identity of S3 data: one object's own sha256, or a digest over a folder's objects."""
    if len(objects) == 1:
        digest = objects[0].sha256
    else:
        lines = "".join(f"{o.uri}\0{o.sha256}\n" for o in sorted(objects, key=lambda o: o.uri))
        digest = hashlib.sha256(lines.encode()).hexdigest()
    return DataIdentity(
        source=source,
        kind="s3",
        sampling=sampling,
        sha256=digest,
        size_bytes=sum(o.size_bytes for o in objects),
        object_count=len(objects),
        objects=sorted(objects, key=lambda o: o.uri)[:MAX_LISTED_OBJECTS],
    )
