"""Who runs what across the fleet, as one trainer knows it: the heartbeats, folded.

Every trainer's heartbeat on sparktrainer.trainers names the job it runs, its tenant, class and
GPUs (``scheduling/presence.py``). :class:`FleetUsage` keeps each trainer's latest beat and turns
them into the :class:`~sparktrainer.contracts.fairshare.Ledger` the pick rule reads.

Staleness: a heartbeat goes out at once when a trainer's running job changes (within
``presence.CHANGE_POLL_S``, 0.5 s) and every ``trainer_heartbeat_s`` otherwise, so the view
lags a start or an end by that poll plus one broker round trip; a trainer silent for
``MISSED_BEATS`` intervals (or that said it stops) counts no more. This trainer's own running
job is always counted from its own state, never from its last beat.

With a usage window (``window_s`` > 0, ``SPARKTRAINER_SCHEDULE_FAIR_WINDOW_S``) it also keeps
each trainer's runs over that window (:class:`~sparktrainer.contracts.fairshare.UsageWindow`):
a run starts at the first beat that names a job and ends at the first that names another or
none, or at a silent trainer's last beat (the beats' own times, so their lag cancels out). The
trainer reads the heartbeats from a window back when it starts, so a restart keeps the window.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime

from sparktrainer.contracts.fairshare import Ledger, UsageWindow
from sparktrainer.contracts.schedule_events import TrainerHeartbeat

MISSED_BEATS = 3  # as the registry's queue view counts a trainer gone
MAX_INTERVAL_S = 300.0  # a beat claiming a longer interval is held to this one
MAX_TRAINERS = 10_000  # a flood of made-up trainer ids cannot grow the view without end


@dataclass
class FleetUsage:
    """The latest heartbeat of each trainer; :meth:`ledger` is who runs what now."""

    me: str
    window_s: float = 0.0  # > 0: the share is trainer-seconds over this window
    beats: dict[str, TrainerHeartbeat] = field(default_factory=dict)
    runs: UsageWindow = field(init=False)
    _running: dict[str, str] = field(default_factory=dict)  # trainer: the job its runs has

    def __post_init__(self) -> None:
        self.runs = UsageWindow(self.window_s)

    def __repr__(self) -> str:
        return f"FleetUsage(me={self.me}, trainers={len(self.beats)}, {self.runs})"

    def _track(self, beat: TrainerHeartbeat) -> None:
        """A run starts or ends when a trainer's beat names another job than before."""
        job = None if beat.stopping else beat.running_job_id
        tid, at_s = beat.trainer_id, beat.at.timestamp()
        if self._running.get(tid) == job:
            return
        self.runs.end(tid, at_s)
        self._running.pop(tid, None)
        if job and beat.running_tenant and beat.running_class:
            self._running[tid] = job
            self.runs.start(tid, beat.running_tenant, beat.running_class, beat.running_gpus, at_s)

    def fold(self, beat: TrainerHeartbeat) -> None:
        """A heartbeat (an older one than the one kept changes nothing)."""
        kept = self.beats.get(beat.trainer_id)
        if kept is not None and kept.at > beat.at:
            return
        if kept is None and len(self.beats) >= MAX_TRAINERS:
            return
        self.beats[beat.trainer_id] = beat
        if self.window_s > 0 and beat.trainer_id != self.me:  # its own: from its own state
            self._track(beat)

    def live(self, now: datetime) -> list[TrainerHeartbeat]:
        """Beats of trainers heard from lately that have not said they stop."""
        return [
            b
            for b in self.beats.values()
            if not b.stopping
            and (now - b.at).total_seconds() <= MISSED_BEATS * min(b.every_s, MAX_INTERVAL_S)
        ]

    def ledger(self, now: datetime, mine: TrainerHeartbeat) -> Ledger:
        """Running jobs and GPUs per (tenant, class) of the live fleet, ``mine`` as it is now."""
        others = [b for b in self.live(now) if b.trainer_id != self.me]
        fleet = [*others, mine]
        ledger = Ledger(trainers=len(fleet), gpus=sum(b.gpus for b in fleet))
        for b in fleet:
            if b.running_job_id and b.running_tenant and b.running_class:
                ledger.hold(b.running_tenant, b.running_class, b.running_gpus)
        if self.window_s <= 0:
            return ledger
        alive = {b.trainer_id for b in others}
        for tid in self.runs.running() - alive - {self.me}:  # silent: ended at its last beat
            self.runs.end(tid, self.beats[tid].at.timestamp() if tid in self.beats else 0.0)
            self._running.pop(tid, None)
        self._track(mine.model_copy(update={"trainer_id": self.me, "at": now}))
        return self.runs.fill(ledger, now.timestamp())
