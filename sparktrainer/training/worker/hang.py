"""The hang rule: when a job's silence means it hangs (pure: times are passed in, in seconds).

The training loop beats before each micro-batch it trains on and each validation batch, with
its optimizer step (``training/job/heartbeat.py``); the worker's parent feeds the beats to a
:class:`ProgressWatch`. A job hangs when nothing beat for longer than its limit: before its first
optimizer step (setup, data download, model load, the first step's warm-up) max(floor, warm-up);
after it max(floor, k x the median step time measured so far). The floor covers what passes
without a batch between steps (a checkpoint written, the epoch's end); the loop's end (saving
the model, uploads) is not watched.
"""

from __future__ import annotations

import statistics
from collections import deque
from dataclasses import dataclass, field

from sparktrainer.settings import Settings

STEP_TIMES_KEPT = 512  # the median is over the latest steps: a job may slow down or speed up
FLOOR_SETTING = "SPARKTRAINER_HANG_FLOOR_S"
FACTOR_SETTING = "SPARKTRAINER_HANG_STEP_FACTOR"
WARMUP_SETTING = "SPARKTRAINER_HANG_WARMUP_S"


@dataclass(frozen=True)
class HangLimit:
    """How long a job may be silent now, and what set it (for the failure's reason)."""

    seconds: float
    basis: str


@dataclass(frozen=True)
class HangRule:
    """max(``floor_s``, ``step_factor`` x the median step time); before the first step
    max(``floor_s``, ``warmup_s``)."""

    floor_s: float
    step_factor: float
    warmup_s: float

    @classmethod
    def from_settings(cls, settings: Settings) -> HangRule | None:
        """The deployment's rule; None when the watchdog is off (a floor of 0)."""
        if not settings.hang_floor_s:
            return None
        return cls(settings.hang_floor_s, settings.hang_step_factor, settings.hang_warmup_s)

    def limit(self, step_times_s: list[float] | deque[float]) -> HangLimit:
        """The silence allowed after these step times (none yet: the warm-up allowance)."""
        floor = HangLimit(self.floor_s, f"the floor {FLOOR_SETTING}={self.floor_s:g}")
        if not step_times_s:
            if self.warmup_s <= self.floor_s:
                return floor
            note = f"the allowance before the first step {WARMUP_SETTING}={self.warmup_s:g}"
            return HangLimit(self.warmup_s, note)
        median = statistics.median(step_times_s)
        scaled = self.step_factor * median
        if scaled <= self.floor_s:
            return floor
        note = f"{self.step_factor:g} x the median step time {median:.3g} s ({FACTOR_SETTING})"
        return HangLimit(scaled, note)


@dataclass(frozen=True)
class Hang:
    """A verdict: silent this long (s), past this limit, at this step (None: before any beat)."""

    silent_s: float
    limit: HangLimit
    step: int | None

    def describe(self) -> str:
        """E.g. 'no progress (no batch, no optimizer step) for 3.4 s after step 12, past ...'."""
        where = f"after step {self.step}" if self.step is not None else "before its first batch"
        return (
            f"no progress (no batch, no optimizer step) for {self.silent_s:.1f} s {where}, past "
            f"the hang limit of {self.limit.seconds:.3g} s ({self.limit.basis})"
        )


@dataclass
class ProgressWatch:
    """One attempt's beats, from ``since`` (when the worker took the job)."""

    rule: HangRule
    since: float
    last_seen: float = field(init=False)
    step: int | None = field(default=None, init=False)
    step_at: float = field(default=0.0, init=False)
    step_times: deque[float] = field(default_factory=lambda: deque(maxlen=STEP_TIMES_KEPT))
    ended: bool = field(default=False, init=False)

    def __post_init__(self) -> None:
        self.last_seen = self.since

    def beat(self, at: float, step: int | None) -> None:
        """A beat at time ``at`` at optimizer ``step``; None: the loop ended (stop watching)."""
        if step is None:
            self.ended = True
            return
        self.last_seen = max(self.last_seen, at)
        if self.step is not None and step > self.step:
            self.step_times.append(max(0.0, at - self.step_at) / (step - self.step))
        if self.step is None or step > self.step:
            self.step, self.step_at = step, at

    def hung(self, now: float) -> Hang | None:
        """The verdict at ``now``: a ``Hang`` when the silence passed the limit, else None."""
        if self.ended:
            return None
        limit = self.rule.limit(self.step_times)
        silent = now - self.last_seen
        return Hang(silent, limit, self.step) if silent > limit.seconds else None
