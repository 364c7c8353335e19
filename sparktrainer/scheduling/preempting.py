"""The trainer's side of priority preemption: its running job against its waiting records.

The rule is ``contracts/preemption.py``; this keeps, per job, when this trainer preempted it
(for the rule's bound; forgotten after the window, at most ``MAX_JOBS`` jobs), and asks the
picker what it would take were the running job waiting again.
"""

from __future__ import annotations

from collections import OrderedDict

from sparktrainer.contracts.preemption import PreemptionRule
from sparktrainer.contracts.records import Received
from sparktrainer.scheduling.picker import PriorityWaiting

MAX_JOBS = 10_000  # jobs whose preemptions are remembered (oldest forgotten first)


class Preemptions:
    """Whether the running job gives way now, and when each job gave way before."""

    def __init__(self, rule: PreemptionRule | None, waiting: PriorityWaiting) -> None:
        self.rule, self.waiting = rule, waiting
        self.history: OrderedDict[str, list[int]] = OrderedDict()  # job id -> times (ms)
        self.preempted = 0  # preemptions this trainer asked for

    def __repr__(self) -> str:
        return f"Preemptions(rule={self.rule}, preempted={self.preempted})"

    def check(self, running: Received, job_id: str) -> str | None:
        """The reason ``running`` (job ``job_id``) should give way now, else None."""
        if self.rule is None:
            return None
        other = self.waiting.would_take_over(running)
        if other is None:
            return None
        now = self.waiting.clock()
        before = self._recent(job_id, now)
        return self.rule.verdict(
            self.waiting.requeued(running), self.waiting.waiting(other), before, now
        )

    def gave_way(self, job_id: str) -> None:
        """Job ``job_id`` was asked to give way now (counted against its bound)."""
        now = self.waiting.clock()
        self.history[job_id] = [*self._recent(job_id, now), now]
        self.history.move_to_end(job_id)
        while len(self.history) > MAX_JOBS:
            self.history.popitem(last=False)
        self.preempted += 1

    def _recent(self, job_id: str, now: int) -> list[int]:
        window_ms = self.rule.window_s * 1000 if self.rule else 0
        return [t for t in self.history.get(job_id, []) if now - t < window_ms]
