"""The W3C trace context on our events: parsed strictly, carried as ce_traceparent."""

from __future__ import annotations

import pytest

from sparktrainer.contracts.envelope import decode, encode, unwrap
from sparktrainer.contracts.events import CancelRequested
from sparktrainer.contracts.trace import HEADER, TraceContext, job_trace, trace_of, traced

GOOD = "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01"


def test_a_valid_traceparent_round_trips() -> None:
    ctx = TraceContext.parse(GOOD)
    assert ctx == TraceContext("4bf92f3577b34da6a3ce929d0e0e4736", "00f067aa0ba902b7", True)
    assert ctx.header() == GOOD
    assert TraceContext.parse(GOOD.encode()) == ctx
    assert TraceContext.parse(GOOD[:-2] + "00").sampled is False


@pytest.mark.parametrize(
    "bad",
    [
        None, "", "garbage", GOOD.upper(), GOOD + "-extra", "ff" + GOOD[2:],
        "00-" + "0" * 32 + "-00f067aa0ba902b7-01",
        "00-4bf92f3577b34da6a3ce929d0e0e4736-" + "0" * 16 + "-01",
        "00-4bf92f3577b34da6a3ce929d0e0e473-00f067aa0ba902b7-01", b"\xff\xfe" * 300, "é" * 55,
    ],
)  # fmt: skip
def test_anything_else_is_no_trace(bad) -> None:
    assert TraceContext.parse(bad) is None
    assert trace_of([(HEADER, bad if isinstance(bad, bytes) else str(bad).encode())]) is None


def test_a_job_without_a_trace_gets_the_same_one_every_time() -> None:
    first, again = job_trace([], "job-1"), job_trace([("traceparent", b"nonsense")], "job-1")
    assert first == again != job_trace([], "job-2")
    assert job_trace([("traceparent", GOOD.encode())], "job-1").trace_id == GOOD.split("-")[1]


def test_traced_records_carry_one_ce_traceparent_the_sdk_reads() -> None:
    record = encode(CancelRequested(job_id="j1"), "test")
    ctx = TraceContext.new()
    once = traced(traced(record, TraceContext.new()), ctx)
    assert [k for k, _ in once.headers].count(HEADER) == 1
    assert trace_of(once.headers) == ctx
    attributes, _ = unwrap(once.value, once.headers)
    assert attributes["traceparent"] == ctx.header()  # the CloudEvents extension attribute
    assert decode(once.value, once.headers).job_id == "j1"
    assert ctx.child().trace_id == ctx.trace_id and ctx.child().span_id != ctx.span_id
