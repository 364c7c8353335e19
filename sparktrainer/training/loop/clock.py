"""When to report progress (rate-limited), and the samples/s and ETA it reports."""

from __future__ import annotations

import math
import time
from collections.abc import Callable


class ProgressClock:
    """Decides when to report (every ``every_s`` seconds) and measures samples/s and ETA."""

    def __init__(
        self,
        every_s: float,
        total_steps: int,
        start_step: int,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.every_s, self.total_steps, self.clock = every_s, total_steps, clock
        self.start_step = self.window_step = start_step
        self.start = self.window_start = clock()
        self.window_samples = 0
        self.last_report = -math.inf
        self.last_rate: float | None = None

    def add(self, samples: int) -> None:
        """Count samples trained since the last report."""
        self.window_samples += samples

    def due(self) -> bool:
        """Whether a rate-limited report is due now (the first one always is)."""
        return self.clock() - self.last_report >= self.every_s

    def restart_window(self) -> None:
        """Start measuring samples/s afresh (after validation or a checkpoint pause)."""
        self.window_start, self.window_samples = self.clock(), 0

    def rates(self, step: int) -> dict[str, float | None]:
        """samples_per_s since the last report (or the last known), eta_s; starts a new window."""
        now = self.clock()
        elapsed = max(now - self.window_start, 1e-9)
        if self.window_samples:
            self.last_rate = self.window_samples / elapsed
        run_s, run_steps = now - self.start, step - self.start_step
        eta = (self.total_steps - step) * run_s / run_steps if run_steps > 0 else None
        self.window_start, self.window_samples, self.last_report = now, 0, now
        return {"samples_per_s": self.last_rate, "eta_s": eta}
