"""The S3 retry budget is the settings' (s3_retry_attempts x s3_retry_backoff_s), nothing hidden.

minio's default HTTP pool retried every call 5 more times with its own backoff (about 6 s
against a refused connection) and waited up to 300 s for a silent server, so an outage took
far longer to give up on than the settings said. The store now uses a pool without retries.
"""

from __future__ import annotations

import socket
import time

import pytest
from pydantic import SecretStr

from sparktrainer.errors import StorageError
from sparktrainer.settings import Settings
from sparktrainer.storage.s3 import ObjectStore


def _closed_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]  # closed again when the block ends: connections are refused


def _store(endpoint: str, **settings: object) -> ObjectStore:
    return ObjectStore.from_settings(
        Settings(
            s3_endpoint=endpoint,
            s3_access_key=SecretStr("key"),
            s3_secret_key=SecretStr("secret"),
            **settings,
        )
    )


def test_a_refused_store_gives_up_after_the_configured_attempts() -> None:
    store = _store(
        f"http://127.0.0.1:{_closed_port()}", s3_retry_attempts=3, s3_retry_backoff_s=0.1
    )
    started = time.monotonic()
    with pytest.raises(StorageError, match="failed after 3 attempts") as failed:
        store.put_bytes("k", b"v")
    assert time.monotonic() - started < 2.0  # 0.1 + 0.2 s of backoff, not 3 x 6 s
    assert "secret" not in str(failed.value)


def test_a_silent_store_times_out_per_the_settings() -> None:
    with socket.socket() as server:  # accepts connections, never answers
        server.bind(("127.0.0.1", 0))
        server.listen(8)
        port = server.getsockname()[1]
        store = _store(
            f"http://127.0.0.1:{port}",
            s3_retry_attempts=2,
            s3_retry_backoff_s=0.05,
            s3_read_timeout_s=0.3,
        )
        started = time.monotonic()
        with pytest.raises(StorageError, match="failed after 2 attempts"):
            store.get_bytes("k")
        assert time.monotonic() - started < 3.0  # 2 x 0.3 s, not 300 s a try


def test_a_request_given_up_on_is_aborted_not_left_to_the_kernel() -> None:
    # A closed socket's unsent bytes would otherwise still go out, e.g. when a cut link comes
    # back: a write whose fence was checked long before would land (storage/fencing.py).
    with socket.socket() as server:  # accepts connections, reads them, never answers
        server.bind(("127.0.0.1", 0))
        server.listen(8)
        store = _store(
            f"http://127.0.0.1:{server.getsockname()[1]}",
            s3_retry_attempts=1,
            s3_read_timeout_s=0.3,
        )
        with pytest.raises(StorageError, match="failed after 1 attempts"):
            store.put_bytes("k", b"v")
        conn, _ = server.accept()
        conn.settimeout(5)
        with conn, pytest.raises(ConnectionResetError):  # a reset, not an orderly end
            for _ in range(100):  # the request's bytes, then the reset
                assert conn.recv(1 << 16), "the connection ended with a FIN, not a reset"
