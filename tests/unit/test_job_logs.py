"""What of an attempt's log leaves the machine: every secret replaced, the head and the tail
kept within the cap (a real file, read the way the trainer uploads it)."""

from __future__ import annotations

from pydantic import SecretStr

from sparktrainer.settings import Settings
from sparktrainer.training.worker.joblogs import CUT_NOTE, REDACTED, JobLogs


def test_a_log_keeps_its_head_and_tail_and_never_a_secret(tmp_path) -> None:
    secret = "s3cr3t-key-0123456789"
    settings = Settings(home=tmp_path, s3_secret_key=SecretStr(secret), job_log_max_bytes=4096)
    logs = JobLogs(settings)
    try:
        small = logs.path("j1", 1)
        small.write_bytes(f"connecting with {secret}\n".encode())
        assert logs.snapshot("j1", 1) == b"connecting with " + REDACTED + b"\n"
        big = logs.path("j1", 2)
        head, tail = b"first line\n", f"last line {secret}\n".encode()
        body = head + b"x" * 10_000 + secret.encode() + b"y" * 10_000 + tail
        big.write_bytes(body)
        kept = logs.snapshot("j1", 2)
        assert kept.startswith(head) and kept.endswith(b"last line " + REDACTED + b"\n")
        assert secret.encode() not in kept and len(kept) <= 4096 + len(CUT_NOTE) + 8
        assert CUT_NOTE % (len(body) - 4096) in kept
        assert logs.snapshot("j1", 3) == b""  # an attempt that wrote nothing (yet)
    finally:
        logs.close()
    assert not logs.root.exists()
