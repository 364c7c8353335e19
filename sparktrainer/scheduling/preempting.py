"""The trainer's side of priority preemption: its running job against its waiting records.

The rule is ``contracts/preemption.py``; this keeps, per job, when it was preempted (for the
rule's bound; forgotten after the window, at most ``MAX_JOBS`` jobs), and asks the picker what
it would take were the running job waiting again. Those times are the job's, not this
trainer's: each attempt that starts here recalls them from the job's attempt record
(``stored``: the trainer passes ``storage/outcomes.py gave_way_times``), so a job preempted by
another trainer, or by this one before a restart, counts those preemptions against its bound.
"""

from __future__ import annotations

import asyncio
from collections import OrderedDict
from collections.abc import Callable

from sparktrainer.contracts.preemption import PreemptionRule
from sparktrainer.contracts.records import Received
from sparktrainer.errors import StorageError
from sparktrainer.scheduling.picker import PriorityWaiting

MAX_JOBS = 10_000  # jobs whose preemptions are remembered (oldest forgotten first)


class Preemptions:
    """Whether the running job gives way now, and when each job gave way before.

    :param rule: the deployment's rule (None: preemption is off).
    :param waiting: the trainer's waiting records and their pick rule.
    :param stored: a job's preemption times as its attempt record holds them (wall-clock ms;
        raises StorageError when the store cannot tell).
    """

    def __init__(
        self,
        rule: PreemptionRule | None,
        waiting: PriorityWaiting,
        stored: Callable[[str], list[int]] = lambda job_id: [],
    ) -> None:
        self.rule, self.waiting, self.stored = rule, waiting, stored
        self.history: OrderedDict[str, list[int]] = OrderedDict()  # job id -> times (ms)
        self.preempted = 0  # preemptions this trainer asked for
        self.held = 0  # verdicts the bound alone withheld
        self._recalled: object = None  # the attempt whose job's times were recalled last

    def __repr__(self) -> str:
        return f"Preemptions(rule={self.rule}, preempted={self.preempted}, held={self.held})"

    async def recall(self, job_id: str, attempt: object) -> None:
        """Once per ``attempt`` (any object naming it): learn the job's stored preemption
        times. The larger count in the window wins (this trainer may know of one whose record
        was not written); when the store cannot tell, what this trainer knows stands."""
        if self.rule is None or attempt is self._recalled:
            return
        self._recalled = attempt
        try:
            stored = await asyncio.to_thread(self.stored, job_id)
        except StorageError:
            return
        now = self.waiting.clock()
        if len(self._within(stored, now)) >= len(self._recent(job_id, now)):
            self._remember(job_id, self._within(stored, now))

    def check(self, running: Received, job_id: str) -> str | None:
        """The reason ``running`` (job ``job_id``) should give way now, else None."""
        if self.rule is None:
            return None
        other = self.waiting.would_take_over(running)
        if other is None:
            return None
        now = self.waiting.clock()
        before = self._recent(job_id, now)
        mine, theirs = self.waiting.requeued(running), self.waiting.waiting(other)
        why = self.rule.verdict(mine, theirs, before, now)
        if why is None and before and self.rule.verdict(mine, theirs, [], now) is not None:
            self.held += 1
        return why

    def gave_way(self, job_id: str) -> None:
        """Job ``job_id`` was asked to give way now (counted against its bound)."""
        now = self.waiting.clock()
        self._remember(job_id, [*self._recent(job_id, now), now])
        self.preempted += 1

    def _remember(self, job_id: str, times: list[int]) -> None:
        self.history[job_id] = times
        self.history.move_to_end(job_id)
        while len(self.history) > MAX_JOBS:
            self.history.popitem(last=False)

    def _recent(self, job_id: str, now: int) -> list[int]:
        return self._within(self.history.get(job_id, []), now)

    def _within(self, times: list[int], now: int) -> list[int]:
        window_ms = self.rule.window_s * 1000 if self.rule else 0
        return [t for t in times if now - t < window_ms]
