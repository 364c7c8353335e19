"""Who runs what across the fleet, as one trainer knows it: the heartbeats, folded.

Every trainer's heartbeat on sparktrainer.trainers names the job it runs, its tenant, class and
GPUs (``scheduling/presence.py``). :class:`FleetUsage` keeps each trainer's latest beat and turns
them into the :class:`~sparktrainer.contracts.fairshare.Ledger` the pick rule reads.

Staleness: a heartbeat goes out at once when a trainer's running job changes (within
``presence.CHANGE_POLL_S``, 0.5 s) and every ``trainer_heartbeat_s`` otherwise, so the view
lags a start or an end by that poll plus one broker round trip; a trainer silent for
``MISSED_BEATS`` intervals (or that said it stops) counts no more. This trainer's own running
job is always counted from its own state, never from its last beat.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime

from sparktrainer.contracts.fairshare import Ledger
from sparktrainer.contracts.schedule_events import TrainerHeartbeat

MISSED_BEATS = 3  # as the registry's queue view counts a trainer gone
MAX_INTERVAL_S = 300.0  # a beat claiming a longer interval is held to this one
MAX_TRAINERS = 10_000  # a flood of made-up trainer ids cannot grow the view without end


@dataclass
class FleetUsage:
    """The latest heartbeat of each trainer; :meth:`ledger` is who runs what now."""

    me: str
    beats: dict[str, TrainerHeartbeat] = field(default_factory=dict)

    def __repr__(self) -> str:
        return f"FleetUsage(me={self.me}, trainers={len(self.beats)})"

    def fold(self, beat: TrainerHeartbeat) -> None:
        """A heartbeat (an older one than the one kept changes nothing)."""
        kept = self.beats.get(beat.trainer_id)
        if kept is not None and kept.at > beat.at:
            return
        if kept is None and len(self.beats) >= MAX_TRAINERS:
            return
        self.beats[beat.trainer_id] = beat

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
        return ledger
