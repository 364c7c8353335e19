"""The consumer runtime every SparkTrainer consumer shares.

A handler is ``async def handle(record: Received) -> list[OutRecord]``. The runtime runs up
to ``concurrency`` handlers at once, sends each handler's output and waits for the broker's
acknowledgement, and only then marks the record done. Offsets are committed as
``offset + 1`` of the contiguous done prefix of each partition: never ahead of the work (the
bookkeeping is ``bus/offsets.py``). The bus's other consumer shape, for reading without a
group, is ``bus/reader.py``.

While every slot is busy and ``concurrency`` more records wait for one, the runtime pauses
its partitions and keeps polling, so a consumer with a long job (a trainer) stays in its group
however long the job runs. A freed slot wakes the loop at once; commits run beside it.
"""

from __future__ import annotations

import asyncio
from collections import Counter
from collections.abc import Awaitable, Callable, Iterable
from dataclasses import dataclass
from typing import Any

import structlog
from aiokafka import (
    AIOKafkaConsumer,
    AIOKafkaProducer,
    ConsumerRebalanceListener,
    TopicPartition,
)
from aiokafka.errors import (
    CommitFailedError,
    KafkaError,
    MessageSizeTooLargeError,
    RecordTooLargeError,
)

from sparktrainer.bus.kafka import (
    holds_partition,
    make_consumer,
    make_producer,
    received_from,
    send_all,
)
from sparktrainer.bus.offsets import PartitionOffsets
from sparktrainer.bus.waiting import FifoWaiting, WaitingRecords, tp_of
from sparktrainer.contracts.envelope import OutRecord
from sparktrainer.contracts.records import Received
from sparktrainer.errors import HandedBack, Requeued
from sparktrainer.settings import Settings
from sparktrainer.telemetry.prometheus import Collector, ConsumerCollector, TopicCounts

log = structlog.get_logger(__name__)


# Producer errors that no retry can cure: the record itself is refused.
NEVER_SENT = (MessageSizeTooLargeError, RecordTooLargeError)
Handler = Callable[[Received], Awaitable[list[OutRecord]]]
FailureHandler = Callable[[Received, BaseException], Awaitable[list[OutRecord]]]


@dataclass
class Stats:
    """Counters tests and operators read (arq-style)."""

    records_in: int = 0
    records_done: int = 0
    records_out: int = 0
    records_refused: int = 0  # outputs the broker can never take (too large): dropped, logged
    handler_errors: int = 0
    commits: int = 0
    rebalances: int = 0


class _Listener(ConsumerRebalanceListener):  # type: ignore[misc]
    def __init__(self, runtime: ConsumerRuntime) -> None:
        self.runtime = runtime

    async def on_partitions_revoked(self, revoked: Iterable[TopicPartition]) -> None:
        await self.runtime.revoke(set(revoked))

    async def on_partitions_assigned(self, assigned: Iterable[TopicPartition]) -> None:
        assigned = set(assigned)
        self.runtime.stats.rebalances += 1
        await self.runtime.reassigned(assigned)
        self.runtime.assigned.set()
        log.info(
            "partitions_assigned", partitions=sorted(f"{t.topic}/{t.partition}" for t in assigned)
        )


class ConsumerRuntime:
    """Runs one handler over a consumer group, at-least-once, with graceful shutdown."""

    def __init__(
        self,
        settings: Settings,
        *,
        name: str,
        group_id: str,
        topics: tuple[str, ...],
        handler: Handler,
        on_failure: FailureHandler | None = None,
        concurrency: int = 1,
        max_records: int | None = None,
        handler_attempts: int = 3,
        revoke_grace_s: float = 5.0,
        shutdown_grace_s: float = 30.0,
        keep_work_on_revoke: bool = False,
        producer: AIOKafkaProducer | None = None,
        consumer_options: dict[str, Any] | None = None,
        waiting: WaitingRecords | None = None,
    ) -> None:
        self.settings = settings
        self.name = name
        self.group_id = group_id
        self.topics = topics
        self.handler = handler
        self.on_failure = on_failure
        self.concurrency = concurrency
        self.max_records = max_records
        self.handler_attempts = handler_attempts
        self.revoke_grace_s = revoke_grace_s
        self.shutdown_grace_s = shutdown_grace_s
        self.keep_work_on_revoke = keep_work_on_revoke
        self.stats = Stats()
        self.counts: TopicCounts = Counter()  # records done by (topic, handled | failed)
        self.ready = asyncio.Event()
        self.assigned = asyncio.Event()  # set once the group has given us partitions
        self._stopping = asyncio.Event()
        self._producer = producer
        self._own_producer = producer is None
        self._consumer_options = consumer_options or {}
        self._consumer: AIOKafkaConsumer | None = None
        self.offsets = PartitionOffsets()
        self._tasks: dict[asyncio.Task[None], tuple[Received, ...]] = {}  # a task's records
        # Fetched, not started: which starts next and what to pause (bus/waiting.py).
        self.waiting: WaitingRecords = waiting if waiting is not None else FifoWaiting()
        self._taken = 0
        self._window = max(concurrency, 16)
        self._commit_task: asyncio.Task[None] | None = None

    # -- lifecycle ---------------------------------------------------------------------

    def stop(self) -> None:
        """Ask the runtime to stop: no new records; in-flight ones get the grace period."""
        self._stopping.set()

    async def wait_positioned(self, timeout_s: float = 30.0) -> None:
        """Wait until partitions are assigned and each has a known fetch position.

        After this, a record produced to the topics is seen even with ``auto_offset_reset=latest``.
        """
        await asyncio.wait_for(self.assigned.wait(), timeout_s)
        assert self._consumer is not None
        for tp in self._consumer.assignment():
            await asyncio.wait_for(self._consumer.position(tp), timeout_s)

    @property
    def producer(self) -> AIOKafkaProducer:
        """The producer output events go through (started by ``run``)."""
        assert self._producer is not None, "runtime not started"
        return self._producer

    async def run(self) -> Stats:
        """Consume until stopped (or until ``max_records`` are done); returns the counters."""
        if self._producer is None:
            self._producer = make_producer(self.settings)
        if self._own_producer:
            await self._producer.start()
        consumer = make_consumer(self.settings, group_id=self.group_id, **self._consumer_options)
        consumer.subscribe(list(self.topics), listener=_Listener(self))
        self._consumer = consumer
        await consumer.start()
        log.info("consumer_ready", consumer=self.name, group=self.group_id, topics=self.topics)
        self.ready.set()
        try:
            await self._loop(consumer)
        finally:
            await self._drain(self.shutdown_grace_s)
            await self._commit()
            await consumer.stop()
            if self._own_producer:
                await self._producer.stop()
            log.info("consumer_stopped", consumer=self.name, **vars(self.stats))
        return self.stats

    async def _loop(self, consumer: AIOKafkaConsumer) -> None:
        while not self._stopping.is_set():
            self._dispatch()
            poll_ms = 100
            if (self._flow_control(consumer) or len(self.waiting)) and self._tasks:
                # Work waits for a slot: wake when one frees up, not after a blind poll timeout
                # (that wait alone capped a busy validator at ``concurrency`` records per 0.1 s).
                await asyncio.wait(self._tasks, timeout=0.1, return_when=asyncio.FIRST_COMPLETED)
                poll_ms = 0  # takes what the fetcher prefetched; polling keeps us in the group
            batch = await consumer.getmany(timeout_ms=poll_ms, max_records=self._window)
            for tp, records in batch.items():
                for r in records:
                    if not self.offsets.accept(tp, r.offset):
                        continue  # refetched after a rebalance gave the partition back
                    self.waiting.add(received_from(r))
                    self.stats.records_in += 1
            self._dispatch()
            self._commit_soon()
            if self.max_records is not None and self.stats.records_done >= self.max_records:
                if not self._tasks:
                    self.stop()

    def _flow_control(self, consumer: AIOKafkaConsumer) -> bool:
        """Pause fetching while busy (True when paused); polling goes on, so the group keeps us."""
        assigned = set(consumer.assignment())
        out_of_quota = self.max_records is not None and self._taken >= self.max_records
        paused = assigned if out_of_quota else self.waiting.to_pause(assigned, self.concurrency)
        if paused:
            consumer.pause(*paused)
        if assigned - paused:
            consumer.resume(*(assigned - paused))
        return bool(paused)

    def _dispatch(self) -> None:
        while len(self._tasks) < self.concurrency:
            if self._stopping.is_set():
                return
            if self.max_records is not None and self._taken >= self.max_records:
                self.waiting.clear()
                return
            rec = self.waiting.take()
            if rec is None:
                return
            if not self.offsets.start(tp_of(rec), rec.offset):  # revoked while pending
                continue
            self._taken += 1
            self._start((rec,), self._process(rec))

    def _start(self, recs: tuple[Received, ...], work: Awaitable[None]) -> None:
        """Run ``work`` (the handling of ``recs``) as a task the runtime keeps until it is done."""
        task = asyncio.ensure_future(work)
        task.set_name(f"{self.name}:{recs[0].offset}")
        self._tasks[task] = recs
        task.add_done_callback(self._tasks.pop)

    async def _process(self, rec: Received) -> None:
        structlog.contextvars.bind_contextvars(
            topic=rec.topic, partition=rec.partition, offset=rec.offset
        )
        outcome = "failed"
        try:
            out, outcome = await self._run_handler(rec)
            await self._publish(out)
        except asyncio.CancelledError:
            raise
        except Requeued as e:  # waits again here, uncommitted, and is not counted as taken
            log.info("record_requeued", consumer=self.name, reason=str(e)[:300])
            self.offsets.give_back(tp_of(rec), rec.offset)
            self.waiting.put_back(rec)
            self._taken -= 1
            return
        except HandedBack as e:
            # Not done: never committed, so the partition's next owner runs it again. Records
            # after it could not commit past it either, so this runtime stops taking more.
            log.info("record_handed_back", consumer=self.name, reason=str(e)[:300])
            self.stop()
            return
        except Exception:  # a bug in encoding or the failure hook: log it, do not stall
            log.exception("record_failed", consumer=self.name)
        self.offsets.finish(tp_of(rec), rec.offset)
        self.stats.records_done += 1
        self.counts[(rec.topic, outcome)] += 1

    async def _run_handler(self, rec: Received) -> tuple[list[OutRecord], str]:
        """The handler's records and "handled", or the failure hook's and "failed"."""
        delay = 0.2
        for attempt in range(1, self.handler_attempts + 1):
            try:
                return await self.handler(rec), "handled"
            except (asyncio.CancelledError, HandedBack):
                raise
            except Exception as e:
                self.stats.handler_errors += 1
                log.exception("handler_error", attempt=attempt, error=type(e).__name__)
                if attempt == self.handler_attempts:
                    # A poison record must not loop forever: answer it and move on.
                    return (await self.on_failure(rec, e) if self.on_failure else []), "failed"
                await asyncio.sleep(delay)
                delay *= 2
        return [], "failed"

    async def holds(self, rec: Received) -> bool:
        """Whether this member holds ``rec``'s partition now (``kafka.holds_partition``)."""
        return await holds_partition(self._consumer, tp_of(rec), rec.offset)

    def lag(self) -> dict[tuple[str, int], int]:
        """Records not yet done per assigned partition: log end at the last fetch - base."""
        consumer, out = self._consumer, {}
        if consumer is None:
            return {}
        for tp in list(consumer.assignment()):
            end, base = consumer.highwater(tp), self.offsets.base(tp)
            if end is not None and base is not None:
                out[(tp.topic, tp.partition)] = max(0, end - base)
        return out

    def collectors(self) -> list[Collector]:
        """What Prometheus reads of this runtime: records by topic and outcome, lag."""
        return [ConsumerCollector({self.name: self})]

    async def _publish(self, out: list[OutRecord]) -> None:
        """Send every output record and wait for acks; retry until the broker takes them.

        A record that can never be taken (too large) is dropped with a log line and a count
        instead of holding its partition forever; anything else (a broker down, timeouts,
        authorization an operator may fix) is retried.
        """
        delay = 0.2
        while out:
            results = await send_all(self.producer, out)
            failed = [(r, e) for r, e in zip(out, results, strict=True) if e is not None]
            self.stats.records_out += len(out) - len(failed)
            for record, error in failed:
                if not isinstance(error, KafkaError):
                    raise error
                if isinstance(error, NEVER_SENT):
                    self.stats.records_refused += 1
                    log.error("publish_refused", topic=record.topic, bytes=len(record.value),
                              error=f"{type(error).__name__}: {error}"[:300])  # fmt: skip
            out = [r for r, e in failed if not isinstance(e, NEVER_SENT)]
            if out:
                log.warning("publish_retry", records=len(out), delay_s=delay)
                await asyncio.sleep(delay)
                delay = min(delay * 2, 10.0)

    # -- offsets -------------------------------------------------------------------------

    def _commit_soon(self) -> None:
        """Commit the done prefix without holding up the loop; one commit in flight at a time.

        A commit is a broker round trip (milliseconds on tansu's S3 log); awaited in the loop,
        it stalled dispatching once per poll.
        """
        if self._commit_task is not None and not self._commit_task.done():
            return
        offsets = self.offsets.committable()
        if offsets:
            self._commit_task = asyncio.create_task(self._commit_offsets(offsets))

    async def _commit(self) -> None:
        """Commit the done prefix now, after the commit in flight (if any)."""
        if self._commit_task is not None:
            await asyncio.gather(self._commit_task, return_exceptions=True)
        await self._commit_offsets(self.offsets.committable())

    async def _commit_offsets(self, offsets: dict[TopicPartition, int]) -> None:
        if not offsets or self._consumer is None:
            return
        try:
            await self._consumer.commit(offsets)
            self.stats.commits += 1
        except (CommitFailedError, KafkaError) as e:
            # The group moved on; the records will be redelivered to their new owner.
            log.warning("commit_failed", error=type(e).__name__)

    async def revoke(self, revoked: set[TopicPartition]) -> None:
        """On rebalance: let in-flight work of revoked partitions finish briefly, commit, drop.

        With ``keep_work_on_revoke`` (long jobs) the work goes on until the new assignment
        shows whether the partition really moved: the eager protocol revokes everything on
        every join, and a sticky assignor usually hands the same partitions back.
        """
        self.waiting.drop(revoked)
        tasks = [t for t, recs in self._tasks.items() if any(tp_of(r) in revoked for r in recs)]
        if tasks and not self.keep_work_on_revoke:
            await self._cancel(tasks, self.revoke_grace_s)
        await self._commit()
        busy = {tp_of(r) for recs in self._tasks.values() for r in recs}
        self.offsets.forget(revoked - busy)

    async def reassigned(self, assigned: set[TopicPartition]) -> None:
        """After a rebalance: stop work whose partition moved to another member."""
        moved = [t for t, recs in self._tasks.items() if {tp_of(r) for r in recs} - assigned]
        if moved:
            log.info("work_moved_elsewhere", records=len(moved))
            await self._cancel(moved, self.revoke_grace_s)
        self.offsets.forget(self.offsets.tracked() - assigned)
        self.waiting.assigned(assigned)

    @staticmethod
    async def _cancel(tasks: list[asyncio.Task[None]], grace_s: float) -> None:
        _, still = await asyncio.wait(tasks, timeout=grace_s)
        for task in still:
            task.cancel()
        await asyncio.gather(*still, return_exceptions=True)

    async def _drain(self, grace_s: float) -> None:
        if self._tasks:
            await self._cancel(list(self._tasks), grace_s)
