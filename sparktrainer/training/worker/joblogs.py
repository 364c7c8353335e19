"""Each attempt's own output: where the worker writes it, and what of it is uploaded.

The child points its stdout and stderr (file descriptors 1 and 2, so prints, warnings,
``logging``, structlog, C extensions and DDP ranks all land there) at one local file per
attempt while it runs the job. The parent, which outlives a killed child, uploads that file to
``jobs/{id}/logs/attempt-{n}.log`` (``AttemptLog``): with each checkpoint, at most every
``job_log_upload_every_s`` while the job reports progress, and once more when the attempt
ended however it ended (a killed worker's log holds what it had flushed). An upload keeps the
file's head and tail within ``job_log_max_bytes`` and replaces every secret the settings hold
(their SecretStr values) before a byte leaves the machine.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import shutil
import sys
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import structlog
from pydantic import SecretStr

from sparktrainer.contracts.events import CheckpointSaved
from sparktrainer.errors import StorageError
from sparktrainer.settings import Settings
from sparktrainer.storage.layout import job_log_key
from sparktrainer.storage.s3 import ObjectStore

log = structlog.get_logger(__name__)

REDACTED = b"[redacted]"
CUT_NOTE = b"\n[... %d bytes cut: the log keeps its first and last bytes ...]\n"
_OVERLAP = 512  # read this much past a cut, so a secret across the cut is still found


def secrets_of(settings: Settings) -> list[bytes]:
    """Every secret value in the settings, longest first (a log must never carry one)."""
    found = []
    for name in type(settings).model_fields:
        value = getattr(settings, name, None)
        if isinstance(value, SecretStr) and len(value.get_secret_value()) >= 4:
            found.append(value.get_secret_value().encode())
    return sorted(found, key=len, reverse=True)


def redact(data: bytes, secrets: list[bytes]) -> bytes:
    """``data`` with every secret replaced."""
    for secret in secrets:
        data = data.replace(secret, REDACTED)
    return data


class JobLogs:
    """The local log files of one worker's attempts (a folder of its own), and their uploads."""

    def __init__(self, settings: Settings) -> None:
        self.root = Path(tempfile.mkdtemp(prefix="sparktrainer-logs-"))
        self.max_bytes = settings.job_log_max_bytes
        self.every_s = settings.job_log_upload_every_s
        self.secrets = secrets_of(settings)

    def path(self, job_id: str, attempt: int) -> Path:
        """Where the child writes this attempt's output."""
        return self.root / f"{job_id}-attempt-{int(attempt)}.log"

    def snapshot(self, job_id: str, attempt: int) -> bytes:
        """The attempt's log as it is uploaded: redacted, its head and tail within the cap."""
        path = self.path(job_id, attempt)
        try:
            size = path.stat().st_size
            with path.open("rb") as f:
                if size <= self.max_bytes:
                    return redact(f.read(), self.secrets)
                half = self.max_bytes // 2
                head = redact(f.read(half + _OVERLAP), self.secrets)[:half]
                f.seek(size - half - _OVERLAP)
                tail = redact(f.read(), self.secrets)[-half:]
        except OSError:
            return b""
        return head + CUT_NOTE % (size - 2 * half) + tail

    def upload(self, store: ObjectStore, job_id: str, attempt: int) -> int:
        """Upload what the attempt has written so far; its size in bytes (nothing is uploaded
        when the child never opened the file, so an upload after the worker's stop cannot
        replace a log with nothing)."""
        if not self.path(job_id, attempt).exists():
            return 0
        data = self.snapshot(job_id, attempt)
        store.put_bytes(job_log_key(job_id, attempt), data, "text/plain; charset=utf-8")
        return len(data)

    def discard(self, job_id: str, attempt: int) -> None:
        """Remove the local file once its last upload is done."""
        with contextlib.suppress(OSError):
            self.path(job_id, attempt).unlink()

    def close(self) -> None:
        """Remove the folder (at the worker's stop)."""
        shutil.rmtree(self.root, ignore_errors=True)


class AttemptLog:
    """The uploads of one running attempt's log, driven by its events and its end."""

    def __init__(self, logs: JobLogs, store: ObjectStore, job_id: str, attempt: int) -> None:
        self.logs, self.store, self.job_id, self.attempt = logs, store, job_id, attempt
        self._last = time.monotonic()

    async def saw(self, event: Any) -> None:
        """Upload after a checkpoint, or when the last upload is ``every_s`` old."""
        if isinstance(event, CheckpointSaved) or time.monotonic() - self._last >= self.logs.every_s:
            await self._upload()

    async def ended(self) -> None:
        """The last upload of the attempt; the local file goes."""
        await self._upload()
        self.logs.discard(self.job_id, self.attempt)

    async def _upload(self) -> None:
        self._last = time.monotonic()
        try:  # a log is worth less than the job: an S3 failure here never ends it
            await asyncio.to_thread(self.logs.upload, self.store, self.job_id, self.attempt)
        except (StorageError, OSError) as e:
            log.warning("job_log_upload_failed", attempt=self.attempt, error=str(e)[:300])


def note(path: Path, text: str) -> None:
    """Append one line of the trainer's own to an attempt's log (the child appends too)."""
    try:
        with path.open("ab") as f:
            f.write(f"[sparktrainer] {text}\n".encode())
    except OSError as e:  # no note is no reason to fail anything
        log.warning("job_log_unwritable", path=str(path), error=str(e)[:300])


@contextlib.contextmanager
def captured(path: Path) -> Iterator[None]:
    """In the child: file descriptors 1 and 2 write to ``path`` until the block ends."""
    for stream in (sys.stdout, sys.stderr):
        with contextlib.suppress(Exception):
            stream.flush()
            stream.reconfigure(line_buffering=True)  # type: ignore[union-attr]  # a kill loses little
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_APPEND, 0o600)
    except OSError as e:  # no log is no reason to fail the job
        log.warning("job_log_unwritable", path=str(path), error=str(e)[:300])
        yield
        return
    saved = [os.dup(1), os.dup(2)]
    try:
        os.dup2(fd, 1)
        os.dup2(fd, 2)
        yield
    finally:
        for stream in (sys.stdout, sys.stderr):
            with contextlib.suppress(Exception):
                stream.flush()
        os.dup2(saved[0], 1)
        os.dup2(saved[1], 2)
        for f in (fd, *saved):
            os.close(f)
