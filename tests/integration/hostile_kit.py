"""Hostile records for every topic (hypothesis), and the deployed processes they are thrown at.

``hostile_records(n)`` draws ``n`` records of every shape: bytes that are no JSON, JSON of any
shape (NaN and Infinity included) under any content type, tombstones, huge fields, our own
events with a field swapped for anything (on their own topic or another one), CloudEvents
headers that lie, keys of any kind (the normal job's id too) and timestamps no calendar holds.
None of them is a job a trainer could run: a submission's template asks for more epochs than
any cap, and a validated job's template too, so a trainer must refuse it before building it.
"""

from __future__ import annotations

import io
import json
import os
import struct
import subprocess
import sys
import time
import uuid
import zlib
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
from hypothesis import HealthCheck, given
from hypothesis import settings as hypothesis_settings
from hypothesis import strategies as st

from sparktrainer.contracts import events as ev
from sparktrainer.contracts import topics as t
from sparktrainer.contracts.envelope import STRUCTURED, encode
from tests.integration.faults_kit import mlp_job
from tests.integration.registry_kit import completed, model, progress, started

UNTRAINABLE_EPOCHS = 10**9  # above any cap: a job that gets through is refused where it runs


@dataclass(frozen=True)
class Hostile:
    """One record to produce as it is: topic, key, value, headers, timestamp."""

    topic: str
    key: bytes | None
    value: bytes | None
    headers: list[tuple[str, bytes]]
    timestamp_ms: int | None


def _untrainable_job(job_id: str) -> dict[str, Any]:
    return {**mlp_job("hostile", epochs=UNTRAINABLE_EPOCHS), "job_id": job_id}


def _templates(job_id: str) -> list[Any]:
    """One valid event of every type we own (each can land on any topic)."""
    job = _untrainable_job(job_id)
    return [
        ev.JobValidated.model_validate({**job, "config_kind": "pytorch.mlp"}),
        ev.JobRejected(job_id=job_id, errors=["x"]),
        started(job_id),
        progress(job_id, 1),
        ev.CheckpointSaved(job_id=job_id, epoch=1, step=1, key="k", size_bytes=1),
        completed(job_id),
        ev.JobFailed(job_id=job_id, reason="r", error_type="E"),
        ev.JobCancelled(job_id=job_id),
        ev.CancelRequested(job_id=job_id),
        model(job_id),
    ]


json_values = st.recursive(
    st.none()
    | st.booleans()
    | st.integers(min_value=-(2**70), max_value=2**70)
    | st.floats(allow_nan=True, allow_infinity=True)
    | st.text(max_size=30),
    lambda kids: (
        st.lists(kids, max_size=4) | st.dictionaries(st.text(max_size=10), kids, max_size=4)
    ),
    max_leaves=12,
)
ids = st.text("abcdefghijklmnopqrstuvwxyz0123456789-", min_size=4, max_size=16).map(
    lambda s: f"h-{s}"
)


@st.composite
def _mutated_event(draw: st.DrawFn) -> tuple[bytes, list[tuple[str, bytes]]]:
    """An event of ours (binary mode), one field swapped for any JSON value, or left whole."""
    event = draw(st.sampled_from(_templates(draw(ids))))
    record = encode(event, "hostile")
    data = json.loads(record.value)
    if draw(st.booleans()):
        data[draw(st.sampled_from(sorted(data)))] = draw(json_values)
    headers = list(record.headers)
    if draw(st.booleans()):  # a type header that lies about the value
        headers = [h for h in headers if h[0] != "ce_type"]
        headers.append(("ce_type", draw(st.sampled_from(sorted(ev.EVENT_TYPES))).encode()))
    return json.dumps(data, allow_nan=True).encode(), headers


@st.composite
def _submission(draw: st.DrawFn, normal_id: str) -> bytes:
    """A job as a publisher writes it, one part swapped for anything (never trainable)."""
    job = _untrainable_job(draw(st.sampled_from([draw(ids), normal_id])))
    where = draw(st.sampled_from(["job", "config", "data"]))
    target = {"job": job, "config": job["config"], "data": job["config"]["data"]}[where]
    target[draw(st.text(max_size=12) | st.sampled_from(sorted(target)))] = draw(json_values)
    return json.dumps(job, allow_nan=True).encode()


def _values(normal_id: str) -> st.SearchStrategy[tuple[bytes | None, list[tuple[str, bytes]]]]:
    plain = (
        st.none()
        | st.binary(max_size=300)
        | json_values.map(lambda v: json.dumps(v, allow_nan=True).encode())
    )
    huge = st.integers(10_000, 600_000).map(lambda n: b'{"name": "' + b"x" * n + b'"}')
    structured = json_values.map(
        lambda v: json.dumps(
            {"specversion": "1.0", "type": "io.sparktrainer.x", "data": v}, allow_nan=True
        ).encode()
    )
    return st.one_of(
        st.tuples(plain | huge | structured | _submission(normal_id), st.just([])),
        _mutated_event(),
    )


header_lists = st.lists(
    st.tuples(
        st.sampled_from(
            [
                "content-type",
                "ce_specversion",
                "ce_id",
                "ce_source",
                "ce_type",
                "ce_subject",
                "ce_time",
                "sparktrainer_replayed_from",
                "x",
            ]
        )
        | st.text(max_size=12),
        st.binary(max_size=40) | st.just(STRUCTURED.encode()) | st.just(b"1.0"),
    ),
    max_size=4,
)


@st.composite
def hostile_record(draw: st.DrawFn, normal_id: str) -> Hostile:
    """One record for any topic: value, extra headers, key and timestamp all drawn."""
    value, headers = draw(_values(normal_id))
    key = draw(
        st.none() | st.binary(max_size=40) | ids.map(str.encode) | st.just(normal_id.encode())
    )
    if value is None and key is None:
        key = b"tombstone"  # a Kafka client sends a key or a value, never neither
    timestamp = draw(st.none() | st.integers(0, 2**63 - 1))
    return Hostile(
        draw(st.sampled_from(t.ALL_TOPICS)), key, value, headers + draw(header_lists), timestamp
    )


def hostile_records(count: int, normal_id: str) -> list[Hostile]:
    """``count`` records, drawn the same way every run (derandomized)."""
    drawn: list[Hostile] = []

    @hypothesis_settings(
        max_examples=count,
        database=None,
        derandomize=True,
        deadline=None,
        suppress_health_check=list(HealthCheck),
        phases=["generate"],
    )
    @given(hostile_record(normal_id))
    def collect(record: Hostile) -> None:
        drawn.append(record)

    collect()
    return drawn[:count]


# -- the deployed processes ------------------------------------------------------------------


@dataclass
class Process:
    """A service started as a deployment runs it, its log in a file."""

    name: str
    popen: subprocess.Popen[bytes]
    log: Path

    def alive(self) -> bool:
        """Still running."""
        return self.popen.poll() is None

    def said(self) -> str:
        """Its log so far."""
        return self.log.read_text(errors="replace")

    def stop(self) -> None:
        """SIGTERM, then SIGKILL after 30 s."""
        if self.alive():
            self.popen.terminate()
            try:
                self.popen.wait(30)
            except subprocess.TimeoutExpired:
                self.popen.kill()
                self.popen.wait(10)


def start(name: str, argv: list[str], env: dict[str, str], logs: Path) -> Process:
    """``python ARGV`` with its output in ``logs/NAME.log`` (not waited for)."""
    log = logs / f"{name}.log"
    with log.open("wb") as out:
        popen = subprocess.Popen(
            [sys.executable, *argv], env=env, stdout=out, stderr=subprocess.STDOUT
        )
    return Process(name, popen, log)


def wait_ready(processes: list[Process], marker: str, timeout_s: float = 240.0) -> None:
    """Wait until each process's log has ``marker`` (fails if one exits first)."""
    deadline = time.monotonic() + timeout_s
    for p in processes:
        while marker not in p.said():
            assert p.alive(), f"{p.name} exited early: {p.said()[-2000:]}"
            assert time.monotonic() < deadline, f"{p.name} not ready: {p.said()[-2000:]}"
            time.sleep(0.2)


def service_env(**extra: str) -> dict[str, str]:
    """The test's environment (the stack's addresses) for a child, logging warnings as JSON."""
    return {**os.environ, "SPARKTRAINER_LOG_LEVEL": "WARNING", "PYTHONUNBUFFERED": "1", **extra}


def unique_id(prefix: str) -> str:
    """A job or model id of this run."""
    return f"{prefix}-{uuid.uuid4().hex[:10]}"


# -- a zip bomb ------------------------------------------------------------------------------


def _npy_header(shape: tuple[int, ...], dtype: Any) -> bytes:
    buf = io.BytesIO()
    descr = np.lib.format.dtype_to_descr(np.dtype(dtype))
    np.lib.format.write_array_header_1_0(
        buf, {"descr": descr, "fortran_order": False, "shape": shape}
    )
    return buf.getvalue()


def _deflated_zeros(head: bytes, zeros: int) -> tuple[bytes, int]:
    """``head`` + ``zeros`` zero bytes as raw deflate, and their CRC-32, without the zeros.

    After a full flush the compressor starts afresh, so one compressed MiB of zeros can be
    repeated: only the CRC reads every byte.
    """
    chunk = bytes(1 << 20)
    co = zlib.compressobj(9, zlib.DEFLATED, -15)
    parts = [co.compress(head) + co.flush(zlib.Z_FULL_FLUSH)]
    block = co.compress(chunk) + co.flush(zlib.Z_FULL_FLUSH)
    count, rest = divmod(zeros, len(chunk))
    crc = zlib.crc32(head)
    for _ in range(count):
        crc = zlib.crc32(chunk, crc)
    crc = zlib.crc32(chunk[:rest], crc)
    parts += [block] * count + [co.compress(chunk[:rest]) + co.flush()]
    return b"".join(parts), crc


def npz_bomb(rows: int, cols: int) -> bytes:
    """An .npz of float32 zeros X (rows x cols) and int64 y: a few MB that expand to GBs."""
    members = []
    for name, shape, dtype, size in (
        ("X.npy", (rows, cols), np.float32, rows * cols * 4),
        ("y.npy", (rows,), np.int64, rows * 8),
    ):
        head = _npy_header(shape, dtype)
        data, crc = _deflated_zeros(head, size)
        members.append((name.encode(), data, crc, len(head) + size))
    out, central = io.BytesIO(), b""
    for name, data, crc, size in members:
        offset, sizes = out.tell(), (crc, len(data), size, len(name))
        out.write(b"PK\x03\x04" + struct.pack("<HHHHHIIIHH", 20, 0, 8, 0, 0, *sizes, 0) + name)
        out.write(data)
        central += b"PK\x01\x02" + struct.pack("<HHHHHHIIIHHHHHII", 20, 20, 0, 8, 0, 0, *sizes,
                                                 0, 0, 0, 0, 0, offset) + name  # fmt: skip
    start = out.tell()
    out.write(central)
    end = struct.pack("<HHHHIIH", 0, 0, len(members), len(members), len(central), start, 0)
    out.write(b"PK\x05\x06" + end)
    return out.getvalue()
