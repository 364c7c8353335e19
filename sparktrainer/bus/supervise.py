"""Background tasks that survive: a record's exception is skipped, a task that dies restarts.

A service's background loops (the trainer's janitor, heartbeats, cancel listener and fleet
follower, the sweep controller's driving) are started and not awaited: an exception nobody
sees would end one for good, silently. Two guards, one :class:`Faults` per process to count
what they caught:

- :meth:`Faults.record` around the work of one record: any exception is counted, logged the
  first time its (task, error type) is seen (a poison topic is one line, not a flood), and the
  record is skipped;
- :func:`supervise` around a whole task: when it raises, it is counted, logged once per error
  type and started again after a backoff that doubles up to a cap (back to the start once it
  has run that long without dying). Cancelling it cancels the task; a task that returns is done.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections import Counter
from collections.abc import Awaitable, Callable, Iterator
from dataclasses import dataclass, field

import structlog

from sparktrainer.contracts.records import Received

log = structlog.get_logger(__name__)
BACKOFF_S = 1.0
BACKOFF_MAX_S = 60.0


@dataclass
class Faults:
    """What a process's background tasks survived: errors by (task, type), restarts by task."""

    errors: Counter[tuple[str, str]] = field(default_factory=Counter)
    restarts: Counter[str] = field(default_factory=Counter)

    def __repr__(self) -> str:
        return f"Faults(errors={dict(self.errors)}, restarts={dict(self.restarts)})"

    def survived(self, task: str, error: BaseException, rec: Received | None = None) -> None:
        """Count an exception a task got past; log it the first time its type is seen there."""
        key = (task, type(error).__name__)
        self.errors[key] += 1
        if self.errors[key] > 1:
            return
        where = {} if rec is None else {"topic": rec.topic, "partition": rec.partition,
                                        "offset": rec.offset}  # fmt: skip
        log.error("background_error", task=task, error=f"{key[1]}: {error}"[:500],
                  once="later ones of this type are only counted", exc_info=error,
                  **where)  # fmt: skip

    @contextlib.contextmanager
    def record(self, task: str, rec: Received | None = None) -> Iterator[None]:
        """Around one record's work: whatever it raises is counted and the record skipped."""
        try:
            yield
        except Exception as e:  # any record, any bug: the task goes on with the next one
            self.survived(task, e, rec)


async def supervise(
    name: str,
    run: Callable[[], Awaitable[object]],
    faults: Faults,
    *,
    backoff_s: float = BACKOFF_S,
    backoff_max_s: float = BACKOFF_MAX_S,
) -> None:
    """Run ``run()`` until it returns; each time it raises, count it and start it again after a
    backoff (doubling to ``backoff_max_s``; reset once a run lasted that long)."""
    loop = asyncio.get_running_loop()
    delay = backoff_s
    while True:
        started = loop.time()
        try:
            await run()
            return
        except Exception as e:  # CancelledError is no Exception: cancelling stops it
            faults.survived(name, e)
            faults.restarts[name] += 1
        if loop.time() - started >= backoff_max_s:
            delay = backoff_s
        log.warning("background_restart", task=name, in_s=delay, restarts=faults.restarts[name])
        await asyncio.sleep(delay)
        delay = min(delay * 2, backoff_max_s)
