"""Following one job's story on Kafka: its verdict and its lifecycle events, in order.

Why Kafka and not the read model: ``submit --wait`` and ``jobs watch`` must work with no
projector or API running, and must show every progress event, not the last one a projector
happened to fold. Every event of a job is keyed by its job id, so one partition of each
topic holds the job's whole story: the follower computes that partition (murmur2, like every
Kafka client's default partitioner), assigns only it, and reads it without a consumer group
(no join, nothing committed), keeping the records whose key is the job id.
"""

from __future__ import annotations

import time
from collections.abc import AsyncIterator
from typing import Any

from sparktrainer.bus.kafka import ensure_topics
from sparktrainer.bus.reader import LogReader
from sparktrainer.contracts import topics as t
from sparktrainer.contracts.envelope import EnvelopeError
from sparktrainer.contracts.events import (
    JobCancelled,
    JobCompleted,
    JobFailed,
    JobRejected,
)
from sparktrainer.contracts.records import decode_received
from sparktrainer.contracts.schedule_events import SweepValidated
from sparktrainer.settings import Settings

# Every topic a job's (or a sweep's) story is on: its route's is one of the validated topics.
FOLLOWED_TOPICS = (*t.VALIDATED_TOPICS, t.JOBS_REJECTED, t.JOBS_LIFECYCLE, t.SWEEPS)
FINAL = (JobRejected, JobCompleted, JobFailed, JobCancelled)


def final_status(event: Any) -> str | None:
    """The job's end status if this event ends it, else None."""
    if isinstance(event, JobRejected):
        return "rejected"
    if isinstance(event, JobCancelled) and event.already_ended:
        return event.already_ended  # the cancel came late: the job had already ended so
    if isinstance(event, JobCompleted | JobFailed | JobCancelled):
        return event.status
    return None


def subject_of(event: Any) -> str | None:
    """The job an event tells about (a sweep's events name it by its sweep id)."""
    if isinstance(event, SweepValidated):
        return event.sweep_id
    return getattr(event, "job_id", None)


class JobFollower:
    """Reads the events of one job from the partitions that hold its key."""

    def __init__(self, settings: Settings, job_id: str) -> None:
        self.settings = settings
        self.job_id = job_id
        self.key = job_id.encode()
        self.reader = LogReader(settings)

    async def __aenter__(self) -> JobFollower:
        await ensure_topics(self.settings, FOLLOWED_TOPICS)
        await self.reader.start()
        try:
            tps = await self.reader.key_partitions(FOLLOWED_TOPICS, self.key)
            await self.reader.assign_at_beginning(tps)
        except BaseException:
            await self.reader.stop()
            raise
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.reader.stop()

    async def skip_history(self) -> None:
        """Start after what the log holds now (call before publishing the job)."""
        await self.reader.assign_at_end(self.reader.assignment())

    async def events(self, timeout_s: float | None = None) -> AsyncIterator[Any]:
        """The job's events as they come, until one ends the job; TimeoutError past the limit."""
        deadline = None if timeout_s is None else time.monotonic() + timeout_s
        passed = False  # the job is past the door
        while True:
            if deadline is not None and time.monotonic() > deadline:
                raise TimeoutError(f"no end of job '{self.job_id}' within {timeout_s:g} s")
            records = sorted(
                (r for r in await self.reader.read(timeout_ms=300) if r.key == self.key),
                key=lambda r: (r.timestamp_ms or 0, r.topic != t.JOBS_LIFECYCLE),
            )
            for record in records:
                try:
                    event = decode_received(  # ours, on its own topic, at a time it can hold
                        record, time_ahead_max_s=self.settings.event_time_ahead_max_s
                    )
                except EnvelopeError:
                    continue  # anyone can write these topics: what is not an event is skipped
                if subject_of(event) != self.job_id:
                    continue
                if isinstance(event, JobRejected) and passed:
                    continue  # another record under this id (anyone may key one so): not its end
                passed = passed or not isinstance(event, JobRejected)  # validated, or running
                yield event
                if final_status(event) is not None:
                    return
