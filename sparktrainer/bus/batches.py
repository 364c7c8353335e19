"""The consumer runtime's batch shape: a handler that answers many records in one call.

``BatchRuntime`` is a :class:`~sparktrainer.bus.runtime.ConsumerRuntime` whose slots each take
up to ``batch_max_records`` waiting records at once: one ``batch_handler`` call answers them
(one thread hop, not one per record, for a handler that blocks), their outputs go to the broker
together and are awaited once, and then all of them are marked done, so the next commit moves
over the whole batch. Under a trickle a batch is the one or two records that wait, so a record
never waits for a batch to fill.

The guarantees are the runtime's: a record is committed only after its answer is acknowledged,
and every record is answered. A batch handler that raises (or answers the wrong number of
records) hands its batch to the per-record path: each record through ``handler`` with its
retries, then ``on_failure``, as if no batch had been tried.
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable
from typing import Any

import structlog

from sparktrainer.bus.runtime import ConsumerRuntime
from sparktrainer.bus.waiting import tp_of
from sparktrainer.contracts.envelope import OutRecord
from sparktrainer.contracts.records import Received
from sparktrainer.errors import HandedBack
from sparktrainer.settings import Settings

log = structlog.get_logger(__name__)

BatchHandler = Callable[[list[Received]], Awaitable[list[list[OutRecord]]]]
"""Answers a batch: the output records of each input record, in the batch's order."""


class BatchRuntime(ConsumerRuntime):
    """A consumer runtime whose handler answers a batch of records at a time.

    :param batch_handler: answers a batch (see :data:`BatchHandler`).
    :param batch_max_records: records per batch at most; ``concurrency`` stays the number of
        records in flight, so ``ceil(concurrency / batch_max_records)`` batches run at once.
    :param options: the :class:`ConsumerRuntime` options; its ``handler`` answers one record
        (the path a failed batch falls back to).
    """

    def __init__(
        self,
        settings: Settings,
        *,
        batch_handler: BatchHandler,
        batch_max_records: int = 64,
        **options: Any,
    ) -> None:
        super().__init__(settings, **options)
        self.batch_handler = batch_handler
        self.batch_max_records = max(1, batch_max_records)
        self.batches = 0  # batches answered whole (the rest went record by record)
        self._slots = -(-self.concurrency // self.batch_max_records)

    def __repr__(self) -> str:
        return f"BatchRuntime({self.name}: {self.batches} batches, {self.stats})"

    def _dispatch(self) -> None:
        while len(self._tasks) < self._slots and not self._stopping.is_set():
            batch = self._take_batch()
            if not batch:
                return
            self._start(tuple(batch), self._process_batch(batch))

    def _take_batch(self) -> list[Received]:
        """Up to ``batch_max_records`` waiting records, each started in the offset book."""
        batch: list[Received] = []
        while len(batch) < self.batch_max_records:
            if self.max_records is not None and self._taken >= self.max_records:
                self.waiting.clear()
                break
            rec = self.waiting.take()
            if rec is None:
                break
            if self.offsets.start(tp_of(rec), rec.offset):  # False: revoked while waiting
                self._taken += 1
                batch.append(rec)
        return batch

    async def _process_batch(self, batch: list[Received]) -> None:
        try:
            answers = await self.batch_handler(batch)
            if len(answers) != len(batch):
                raise ValueError(f"{len(answers)} answers to a batch of {len(batch)} records")
        except asyncio.CancelledError:
            raise
        except HandedBack as e:  # not done, never committed: as for one record (runtime.py)
            log.info("batch_handed_back", consumer=self.name, reason=str(e)[:300])
            self.stop()
            return
        except Exception as e:
            log.warning("batch_failed", consumer=self.name, records=len(batch),
                        error=f"{type(e).__name__}: {e}"[:300])  # fmt: skip
            await asyncio.gather(*(self._process(rec) for rec in batch))
            return
        try:
            await self._publish([out for outs in answers for out in outs])
        except asyncio.CancelledError:
            raise
        except Exception:  # a bug in encoding: log it, do not stall (as for one record)
            log.exception("batch_publish_failed", consumer=self.name, records=len(batch))
        self.batches += 1
        for rec in batch:
            self.offsets.finish(tp_of(rec), rec.offset)
            self.counts[(rec.topic, "handled")] += 1
        self.stats.records_done += len(batch)
