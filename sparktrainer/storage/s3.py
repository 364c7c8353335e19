"""A small S3 client over ``minio``: retries with backoff, clear errors, sha256 of uploads."""

from __future__ import annotations

import hashlib
import io
import json
import os
import socket
import struct
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from functools import partial
from pathlib import Path
from typing import Any, TypeVar
from urllib.parse import urlparse

import certifi
import structlog
import urllib3
from minio import Minio
from minio.commonconfig import CopySource
from minio.error import S3Error
from urllib3.connection import HTTPConnection
from urllib3.exceptions import HTTPError

from sparktrainer.errors import ConfigurationError, ObjectNotFound, StorageError
from sparktrainer.settings import Settings

log = structlog.get_logger(__name__)
T = TypeVar("T")
_MISSING = {"NoSuchKey", "NoSuchBucket", "NoSuchObject"}
SHA256_META = "sha256"  # user metadata (x-amz-meta-sha256) written with an upload
# SO_LINGER on, 0 s: closing a connection drops what the kernel has not sent yet. Without it a
# request the client gave up on (a timeout while the link was down) stays queued and goes out
# when the link comes back, landing long after its fence was checked (storage/fencing.py).
ABORT_ON_CLOSE = (socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))


def sha256_file(path: Path) -> str:
    """The hex sha256 of a file, read in chunks."""
    digest = hashlib.sha256()
    with path.open("rb") as f:
        for chunk in iter(lambda: f.read(1 << 20), b""):
            digest.update(chunk)
    return digest.hexdigest()


@dataclass(frozen=True)
class ReadObject:
    """An object's bytes and what identifies them: the server's ETag and version, their sha256."""

    data: bytes
    sha256: str
    etag: str | None
    version_id: str | None


def _http_client(settings: Settings) -> urllib3.PoolManager:
    """minio's HTTP pool, but with bounded timeouts and no retries of its own.

    minio's default pool retries 5 times inside each call (about 6 s against a refused
    connection) and waits up to 300 s for a silent server, so ``s3_retry_attempts`` and
    ``s3_retry_backoff_s`` did not bound an outage; ``ObjectStore._retry`` is the one retry layer.
    A connection given up on is aborted (``ABORT_ON_CLOSE``), never left to the kernel to deliver.
    """
    return urllib3.PoolManager(
        timeout=urllib3.Timeout(
            connect=settings.s3_connect_timeout_s, read=settings.s3_read_timeout_s
        ),
        socket_options=[*HTTPConnection.default_socket_options, ABORT_ON_CLOSE],
        maxsize=10,
        cert_reqs="CERT_REQUIRED",
        ca_certs=os.environ.get("SSL_CERT_FILE") or certifi.where(),
        retries=False,
    )


class ObjectStore:
    """One bucket on an S3 server; every call retries transient failures with backoff.

    A store ``guarded`` by a check runs it before each try of each write (put, copy, delete):
    an attempt's fence (``storage/fencing.py``) refuses the write once the attempt is stale.
    """

    guard: Callable[[], None] | None = None

    def __init__(
        self,
        client: Minio,
        bucket: str,
        retry_attempts: int = 6,
        retry_backoff_s: float = 0.5,
    ) -> None:
        self.client = client
        self.bucket = bucket
        self.retry_attempts = retry_attempts
        self.retry_backoff_s = retry_backoff_s

    @classmethod
    def from_settings(cls, settings: Settings) -> ObjectStore:
        """Build the store from settings; the secrets stay inside the minio client."""
        if not settings.s3_endpoint:
            raise ConfigurationError(
                "No S3 endpoint configured: set SPARKTRAINER_S3_ENDPOINT "
                "or start the embedded stack with `sparktrainer up`."
            )
        url = urlparse(
            settings.s3_endpoint if "://" in settings.s3_endpoint else f"//{settings.s3_endpoint}"
        )
        secure = settings.s3_secure or url.scheme == "https"
        client = Minio(
            url.netloc,
            access_key=settings.s3_access_key.get_secret_value()
            if settings.s3_access_key
            else None,
            secret_key=settings.s3_secret_key.get_secret_value()
            if settings.s3_secret_key
            else None,
            secure=secure,
            region=settings.s3_region,
            http_client=_http_client(settings),
        )
        return cls(
            client, settings.s3_bucket, settings.s3_retry_attempts, settings.s3_retry_backoff_s
        )

    def __repr__(self) -> str:
        return f"ObjectStore(bucket={self.bucket!r})"

    def guarded(self, guard: Callable[[], None]) -> ObjectStore:
        """The same bucket, with ``guard`` run before each try of each write (it raises to
        refuse the write; a retriable StorageError from it is retried like the write)."""
        store = ObjectStore(self.client, self.bucket, self.retry_attempts, self.retry_backoff_s)
        store.guard = guard
        return store

    def _write(self, what: str, fn: Callable[[], T]) -> T:
        return self._retry(what, fn, guard=self.guard)

    def _retry(self, what: str, fn: Callable[[], T], guard: Callable[[], None] | None = None) -> T:
        delay = self.retry_backoff_s
        for attempt in range(1, self.retry_attempts + 1):
            try:
                if guard is not None:
                    guard()
                return fn()
            except S3Error as e:
                if e.code in _MISSING:
                    raise ObjectNotFound(f"{what}: {e.code}") from e
                if e.code in ("AccessDenied", "InvalidAccessKeyId", "SignatureDoesNotMatch"):
                    raise StorageError(f"{what}: {e.code} (check the S3 credentials)") from e
                err: Exception = e
            except (HTTPError, OSError) as e:
                err = e
            except StorageError as e:  # the guard's own read failed: retried like the write
                if not e.retriable:
                    raise
                err = e
            if attempt == self.retry_attempts:
                raise StorageError(
                    f"{what} failed after {attempt} attempts: {type(err).__name__}: {err}"[:500]
                ) from err
            log.warning("s3_retry", what=what, attempt=attempt, error=type(err).__name__)
            time.sleep(delay)
            delay = min(delay * 2, 30.0)
        raise AssertionError("unreachable")

    def ensure_bucket(self) -> None:
        """Create the bucket if it is missing."""
        if not self._retry("bucket_exists", lambda: self.client.bucket_exists(self.bucket)):
            self._retry("make_bucket", lambda: self.client.make_bucket(self.bucket))

    def put_bytes(
        self, key: str, data: bytes, content_type: str = "application/octet-stream"
    ) -> None:
        """Upload bytes under key."""
        self._write(
            f"put {key}",
            lambda: self.client.put_object(
                self.bucket, key, io.BytesIO(data), len(data), content_type=content_type
            ),
        )

    def put_json(self, key: str, obj: Any) -> None:
        """Upload a JSON document."""
        self.put_bytes(key, json.dumps(obj, indent=2, default=str).encode(), "application/json")

    def put_file(self, key: str, path: Path, sha256: str | None = None) -> None:
        """Upload a local file (multipart for large ones); ``sha256`` is kept with the object."""
        meta: dict[str, str | list[str] | tuple[str]] | None = (
            {SHA256_META: sha256} if sha256 else None
        )
        self._write(
            f"put {key}",
            lambda: self.client.fput_object(self.bucket, key, str(path), metadata=meta),
        )

    def get_bytes(self, key: str) -> bytes:
        """Download an object's bytes; ObjectNotFound when it is missing."""

        def read() -> bytes:
            resp = self.client.get_object(self.bucket, key)
            try:
                return resp.read()
            finally:
                resp.close()
                resp.release_conn()

        return self._retry(f"get {key}", read)

    def get_hashed(self, key: str, chunk_bytes: int = 1 << 20) -> ReadObject:
        """An object's bytes, hashed as they arrive, with the ETag and version of that response."""

        def read() -> ReadObject:
            resp = self.client.get_object(self.bucket, key)
            try:
                digest, parts = hashlib.sha256(), []
                for chunk in resp.stream(chunk_bytes):
                    digest.update(chunk)
                    parts.append(chunk)
                etag, version = resp.headers.get("ETag"), resp.headers.get("x-amz-version-id")
                return ReadObject(
                    data=b"".join(parts),
                    sha256=digest.hexdigest(),
                    etag=etag.strip('"')[:128] if etag else None,
                    version_id=None if version in (None, "", "null") else version[:256],
                )
            finally:
                resp.close()
                resp.release_conn()

        return self._retry(f"get {key}", read)

    def get_json(self, key: str) -> Any:
        """Download and parse a JSON document."""
        return json.loads(self.get_bytes(key))

    def get_file(self, key: str, path: Path) -> None:
        """Download an object to a local file."""
        self._retry(f"get {key}", lambda: self.client.fget_object(self.bucket, key, str(path)))

    def copy(self, source: str, key: str) -> None:
        """Copy an object inside the bucket (server-side; one object up to 5 GiB)."""
        self._write(
            f"copy {source} -> {key}",
            lambda: self.client.copy_object(self.bucket, key, CopySource(self.bucket, source)),
        )

    def size(self, key: str) -> int:
        """An object's size in bytes; ObjectNotFound when it is missing."""
        stat = self._retry(f"stat {key}", lambda: self.client.stat_object(self.bucket, key))
        return int(stat.size or 0)

    def stream(
        self, key: str, offset: int = 0, length: int | None = None, chunk_bytes: int = 1 << 20
    ) -> Iterator[bytes]:
        """An object's bytes from ``offset`` (``length`` of them, or to the end), in chunks.

        Opening is retried; a failure in the middle of the transfer ends the stream (the
        caller sees a short read and can resume with a range).
        """
        resp = self._retry(
            f"get {key}",
            lambda: self.client.get_object(self.bucket, key, offset=offset, length=length or 0),
        )
        try:
            yield from resp.stream(chunk_bytes)
        finally:
            resp.close()
            resp.release_conn()

    def recorded_sha256(self, key: str) -> str | None:
        """The sha256 recorded with an object when it was uploaded (None: none recorded)."""
        stat = self._retry(f"stat {key}", lambda: self.client.stat_object(self.bucket, key))
        for name, value in (stat.metadata or {}).items():
            if name.lower() == f"x-amz-meta-{SHA256_META}":
                return str(value)
        return None

    def on_bucket(self, bucket: str) -> ObjectStore:
        """The same server and keys, another bucket (a job's data source)."""
        if bucket == self.bucket:
            return self
        other = ObjectStore(self.client, bucket, self.retry_attempts, self.retry_backoff_s)
        other.guard = self.guard
        return other

    def exists(self, key: str) -> bool:
        """Whether an object exists."""
        try:
            self._retry(f"stat {key}", lambda: self.client.stat_object(self.bucket, key))
        except ObjectNotFound:
            return False
        return True

    def list(self, prefix: str, recursive: bool = True) -> Iterator[str]:
        """Keys under a prefix."""
        objects = self._retry(
            f"list {prefix}",
            lambda: list(self.client.list_objects(self.bucket, prefix=prefix, recursive=recursive)),
        )
        for obj in objects:
            if obj.object_name is not None:
                yield obj.object_name

    def get_flat_folder(self, prefix: str, folder: Path, max_files: int) -> int:
        """The objects right under ``prefix`` (no deeper keys, no dot-names) into ``folder``.

        At most ``max_files`` of them, in key order; returns how many were downloaded.
        """
        count = 0
        for key in sorted(self.list(prefix))[:max_files]:
            name = key.removeprefix(prefix)
            if not name or "/" in name or "\\" in name or name.startswith(".") or "\x00" in name:
                continue
            folder.mkdir(parents=True, exist_ok=True)
            self.get_file(key, folder / name)
            count += 1
        return count

    def delete(self, key: str) -> None:
        """Delete one object (a missing one is not an error)."""
        self._write(f"delete {key}", partial(self.client.remove_object, self.bucket, key))

    def delete_prefix(self, prefix: str) -> int:
        """Delete every object under a prefix; returns how many."""
        keys = list(self.list(prefix))
        for key in keys:
            self.delete(key)
        return len(keys)
