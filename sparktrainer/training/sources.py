"""The S3 objects a job's training data comes from, read within the deployment's rules.

Only buckets jobs may read (``SPARKTRAINER_DATA_BUCKETS``; never the broker's log), and never
an object, or a set of objects (an image folder), larger than the data cap
(``SPARKTRAINER_MAX_DATA_BYTES``): the size is asked first and nothing above it is downloaded.
A compressed ``.npz`` is measured by its arrays' headers before it is expanded.
"""

from __future__ import annotations

import io
import math
import zipfile
from dataclasses import dataclass, field

import numpy as np

from sparktrainer.contracts.access import Access
from sparktrainer.contracts.caps import show_bytes
from sparktrainer.contracts.data_identity import DataIdentity, DataObject, s3_identity
from sparktrainer.contracts.jobspec import DataSpec
from sparktrainer.errors import InvalidJobError
from sparktrainer.settings import Limits, Settings
from sparktrainer.storage.s3 import ObjectStore

DATA_CAP: int = Limits.model_fields["data_bytes"].default


@dataclass
class DataObjects:
    """Reads one job's data objects; ``read_bytes`` counts what it has downloaded.

    Each object read is remembered with its size, ETag, version and sha256 (hashed as it is
    downloaded): :meth:`identity` is what the model's lineage records.
    """

    store: ObjectStore
    access: Access | None = None  # default: the store's own bucket only
    max_bytes: int = DATA_CAP
    read_bytes: int = field(default=0, init=False)
    objects_read: list[DataObject] = field(default_factory=list, init=False)

    @classmethod
    def for_job(cls, store: ObjectStore, settings: Settings) -> DataObjects:
        """The deployment's rules, as the trainer's settings give them."""
        return cls(store, Access.from_settings(settings), settings.limits.data_bytes)

    def locate(self, source: str) -> tuple[ObjectStore, str]:
        """The bucket's store and the key of an ``s3://bucket/key`` source it may read."""
        bucket, _, key = source[5:].partition("/")
        access = self.access or Access(frozenset({self.store.bucket}))
        problem = access.bucket_problem(source)
        if problem:
            raise InvalidJobError([problem])
        return self.store.on_bucket(bucket), key

    def read(self, store: ObjectStore, key: str, what: str) -> bytes:
        """An object's bytes, once its size (with what was read before) is within the cap."""
        size = store.size(key)
        if self.read_bytes + size > self.max_bytes:
            raise InvalidJobError(
                [
                    f"{what}: s3://{store.bucket}/{key[:200]} is {show_bytes(size)} (after "
                    f"{show_bytes(self.read_bytes)} already read), above this deployment's data "
                    f"limit of {show_bytes(self.max_bytes)} (SPARKTRAINER_MAX_DATA_BYTES); "
                    "nothing above it is downloaded"
                ]
            )
        self.read_bytes += size
        got = store.get_hashed(key)
        self.objects_read.append(
            DataObject(
                uri=f"s3://{store.bucket}/{key}",
                size_bytes=len(got.data),
                sha256=got.sha256,
                etag=got.etag,
                version_id=got.version_id,
            )
        )
        return got.data

    def identity(self, spec: DataSpec) -> DataIdentity:
        """What the job trained on: the objects it read, or the built-in set and its sampling."""
        sampling: dict[str, int | float | str] = {
            "seed": spec.seed,
            "validation_split": spec.validation_split,
        }
        if not spec.source.startswith("s3://"):
            if spec.source == "synthetic":
                sampling["num_samples"] = spec.num_samples
            return DataIdentity(source=spec.source, kind="builtin", sampling=sampling)
        sampling["format"] = spec.format
        return s3_identity(spec.source, self.objects_read, sampling)

    def check_in_memory(self, nbytes: int, what: str) -> None:
        """Refuse data that would take more than the cap once expanded in memory."""
        if nbytes > self.max_bytes:
            raise InvalidJobError(
                [
                    f"{what} holds {show_bytes(nbytes)} of arrays once expanded, above this "
                    f"deployment's data limit of {show_bytes(self.max_bytes)} "
                    "(SPARKTRAINER_MAX_DATA_BYTES)"
                ]
            )


def npz_bytes(blob: bytes) -> int:
    """What the arrays of an ``.npz`` take in memory, from their headers (nothing expanded).

    Counted as float32 at least, the training copy. Unreadable archives count 0: the loader
    reports them.
    """
    total = 0
    try:
        with zipfile.ZipFile(io.BytesIO(blob)) as archive:
            for info in archive.infolist():
                with archive.open(info) as member:
                    version = np.lib.format.read_magic(member)
                    read = (
                        np.lib.format.read_array_header_1_0
                        if version == (1, 0)
                        else np.lib.format.read_array_header_2_0
                    )
                    shape, _, dtype = read(member)
                    total += math.prod(shape) * max(4, dtype.itemsize)
    except (zipfile.BadZipFile, ValueError, OSError, EOFError, TypeError):
        return total
    return total
