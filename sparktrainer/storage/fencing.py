"""Fencing: an attempt of a job writes and speaks only while it is the job's latest start.

``jobs/{id}/attempt.json`` (``storage/outcomes.py``) numbers every start of a job before it
starts, and numbers only grow. An attempt holds its fence while that record names it; a later
start (the job moved to another trainer while this one was cut off) takes the fence away. The
attempt's store is ``guarded``: each try of each write reads the record first and refuses with
``FencedOff``; the runner does the same before each event it sends and before the end.

S3 has no compare-and-set, so this narrows the race without closing it: a write (or send)
whose check passed just before the next start was recorded still lands, up to one S3 round
trip of a check plus that one try of the write (or the broker's ack) later.
"""

from __future__ import annotations

from dataclasses import dataclass

from sparktrainer.errors import FencedOff
from sparktrainer.storage.outcomes import recorded_attempt
from sparktrainer.storage.s3 import ObjectStore


def superseded(mine: int, recorded: int | None) -> str | None:
    """Why attempt ``mine`` may write no more (None: it may). No record (None) means no later
    start was recorded, since every start writes it first; an unreadable one (0) is lost."""
    if recorded is None or recorded == mine:
        return None
    if recorded == 0:
        return f"attempt {mine} cannot show it still owns the job: its attempt record is unreadable"
    return (f"attempt {mine} was superseded by attempt {recorded} (the job moved to another "
            "trainer)")  # fmt: skip


@dataclass(frozen=True)
class AttemptFence:
    """Attempt ``attempt`` of job ``job_id``: ``check`` raises FencedOff once it is stale."""

    store: ObjectStore  # an unguarded store: the fence's own reads
    job_id: str
    attempt: int

    def check(self) -> None:
        """Raise FencedOff unless this attempt is the job's latest start (S3 reads retried)."""
        self._refuse(recorded_attempt(self.store, self.job_id))

    def check_once(self) -> None:
        """``check`` with one read and no retries of its own: the guard inside a write's tries
        (a read that fails raises StorageError, and the write's retry tries both again)."""
        once = ObjectStore(self.store.client, self.store.bucket, retry_attempts=1)
        self._refuse(recorded_attempt(once, self.job_id))

    def holds(self) -> bool:
        """Whether this attempt is still the job's latest start (StorageError: cannot tell)."""
        return superseded(self.attempt, recorded_attempt(self.store, self.job_id)) is None

    def guarded(self) -> ObjectStore:
        """The attempt's store: every write of it checked first."""
        return self.store.guarded(self.check_once)

    def _refuse(self, recorded: int | None) -> None:
        why = superseded(self.attempt, recorded)
        if why is not None:
            raise FencedOff(f"job {self.job_id}: {why}; nothing more of it is written or sent")
