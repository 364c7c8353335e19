"""The training loop's sign of life, for the hang watchdog (``training/worker/hang.py``).

The loop beats before each micro-batch it trains on and each validation batch, with its
optimizer step: a beat means the data loader gave a batch. ``Heartbeat`` passes at most one
beat each ``BEAT_EVERY_S`` on (a loop of thousands of steps a second costs one clock read a
step), and one ``None`` when the loop ended, after which nothing is watched. The first beat
past the first step always goes: the watchdog ends its warm-up allowance when a step is done,
and a fast job that hangs within its first quarter second must not keep that allowance.
"""

from __future__ import annotations

import time
from collections.abc import Callable

BEAT_EVERY_S = 0.25  # settings.HANG_FLOOR_MIN_S is four of these
SendBeat = Callable[[int | None], None]


class Heartbeat:
    """Rate-limited beats to ``send`` (None: nobody watches)."""

    def __init__(self, send: SendBeat | None, every_s: float = BEAT_EVERY_S) -> None:
        self.send, self.every_s = send, every_s
        self._last = -every_s
        self._first_step: int | None = None  # the step of the first beat
        self._stepped = False  # a beat past the first step was sent

    def beat(self, step: int) -> None:
        """A batch came, at optimizer ``step``; passed on when the last one is ``every_s`` old
        (or it is the first past the first step)."""
        if self.send is None:
            return
        if self._first_step is None:
            self._first_step = step
        first_past = not self._stepped and step != self._first_step
        now = time.monotonic()
        if first_past or now - self._last >= self.every_s:
            self._stepped = self._stepped or first_past
            self._last = now
            self.send(step)

    def ended(self) -> None:
        """The loop is done: what follows (saving, uploads) is not a step."""
        if self.send is not None:
            self.send(None)
