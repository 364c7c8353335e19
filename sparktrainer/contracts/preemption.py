"""Priority preemption: when a waiting job may stop the running one (pure; times in ms).

A trainer that runs a job and holds a waiting job of a strictly higher priority (the job's own
level, never an aged one) that has waited ``after_s`` stops the running job the
checkpoint-on-stop way (``job.preempted`` at its step) and puts its record back among the
waiting, with the age it had when it started (its run is no wait). ``waiting`` is the job the
trainer's pick rule would take were the running one given back: a preemption never leads to
picking the preempted job right back (no loop), and one job is preempted at most
``max_per_job`` times per ``window_s``.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

from sparktrainer.contracts.scheduling import LEVEL, Waiting
from sparktrainer.settings import Settings


@dataclass(frozen=True)
class PreemptionRule:
    """:param after_s: how long the higher job waits before it preempts (0: never).
    :param max_per_job: preemptions of one job within ``window_s``, at most.
    :param window_s: the window of that bound."""

    after_s: float
    max_per_job: int
    window_s: float

    @classmethod
    def from_settings(cls, settings: Settings) -> PreemptionRule | None:
        """The deployment's rule; None when preemption is off."""
        if not settings.preempt_after_s or not settings.preempt_max_per_job:
            return None
        return cls(
            settings.preempt_after_s, settings.preempt_max_per_job, settings.preempt_window_s
        )

    def verdict(
        self,
        running: Waiting,
        waiting: Waiting | None,
        preempted_ms: Sequence[int],
        now_ms: int,
    ) -> str | None:
        """Why ``running`` gives way to ``waiting`` now (the reason its event carries), or None.

        ``preempted_ms``: when the running job was preempted before (by this trainer).
        """
        if waiting is None or LEVEL.get(waiting.priority, 0) <= LEVEL.get(running.priority, 0):
            return None  # never for an equal or lower priority
        waited_s = (now_ms - waiting.since_ms) / 1000
        if waited_s < self.after_s:
            return None
        recent = [t for t in preempted_ms if now_ms - t < self.window_s * 1000]
        if len(recent) >= self.max_per_job:
            return None
        topic, partition, offset = waiting.where
        return (
            f"gave way to a {waiting.priority}-priority job ({topic}/{partition}@{offset}) that "
            f"had waited {waited_s:.0f} s (SPARKTRAINER_PREEMPT_AFTER_S={self.after_s:g}); "
            f"preemption {len(recent) + 1} of at most {self.max_per_job} in "
            f"{self.window_s:g} s"
        )
