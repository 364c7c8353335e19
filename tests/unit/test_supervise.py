"""Background tasks survive (bus/supervise.py): a record's exception is counted, logged once and
skipped; a task that dies is started again after a doubling backoff; the counts reach
Prometheus."""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import Iterator
from typing import Any

import pytest
import structlog
from structlog.testing import capture_logs

from sparktrainer.bus import supervise as supervise_module
from sparktrainer.bus.supervise import Faults, supervise
from sparktrainer.contracts.records import Received
from sparktrainer.telemetry.prometheus import FaultsCollector, ServiceMetrics

REC = Received("sparktrainer.jobs.control", 0, 7, b"k", b"{}", (), None)


@contextlib.contextmanager
def supervise_logs() -> Iterator[list[dict[str, Any]]]:
    """What bus/supervise.py logs meanwhile. Its module logger may already be cached by an
    earlier test in this process (sparktrainer.logging caches loggers on first use), and a
    cached logger keeps the processors it was built with, so it is swapped for a fresh one
    built inside the capture."""
    with capture_logs() as logs, pytest.MonkeyPatch.context() as mp:
        mp.setattr(supervise_module, "log", structlog.get_logger(supervise_module.__name__))
        yield logs


def test_a_records_exception_is_counted_skipped_and_logged_once_per_type() -> None:
    faults = Faults()
    with supervise_logs() as logs:
        for i in range(50):  # a poison topic: 50 records that each raise
            with faults.record("cancels", REC):
                raise KeyError(i)
        with faults.record("cancels", REC):
            raise ValueError("another kind")
        with faults.record("cancels", REC):
            pass  # a record that works counts nothing
    assert faults.errors == {("cancels", "KeyError"): 50, ("cancels", "ValueError"): 1}
    errors = [e for e in logs if e["event"] == "background_error"]
    assert [(e["error"].split(":")[0], e["offset"]) for e in errors] == [
        ("KeyError", 7),
        ("ValueError", 7),
    ]


async def test_a_task_that_dies_is_restarted_with_a_doubling_backoff_until_it_returns() -> None:
    faults, runs, delays = Faults(), [], []
    real_sleep = asyncio.sleep

    async def sleep(s: float) -> None:
        delays.append(s)
        await real_sleep(0)

    async def flaky() -> str:
        runs.append(len(runs))
        if len(runs) < 5:
            raise RuntimeError(f"death {len(runs)}")
        return "done"

    with pytest.MonkeyPatch.context() as mp:
        mp.setattr("sparktrainer.bus.supervise.asyncio.sleep", sleep)
        with supervise_logs() as logs:
            await asyncio.wait_for(
                supervise("janitor", flaky, faults, backoff_s=0.5, backoff_max_s=3), 5
            )
    assert len(runs) == 5 and delays == [0.5, 1.0, 2.0, 3.0]
    assert faults.restarts == {"janitor": 4} and faults.errors == {("janitor", "RuntimeError"): 4}
    assert sum(e["event"] == "background_error" for e in logs) == 1  # once per error type


async def test_cancelling_a_supervised_task_stops_it_and_is_not_counted() -> None:
    faults, started = Faults(), asyncio.Event()

    async def forever() -> None:
        started.set()
        await asyncio.Event().wait()

    task = asyncio.create_task(supervise("heartbeats", forever, faults))
    await asyncio.wait_for(started.wait(), 5)
    task.cancel()
    with pytest.raises(asyncio.CancelledError):
        await task
    assert not faults.errors and not faults.restarts


def test_the_counts_reach_prometheus() -> None:
    faults = Faults()
    with faults.record("sweep-fold", REC):
        raise TypeError("x")
    faults.restarts["janitor"] += 2
    text = ServiceMetrics([FaultsCollector(faults)]).exposition().decode()
    assert 'sparktrainer_background_errors_total{error="TypeError",task="sweep-fold"} 1.0' in text
    assert 'sparktrainer_background_restarts_total{task="janitor"} 2.0' in text
