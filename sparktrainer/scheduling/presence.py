"""A trainer's heartbeat on sparktrainer.trainers: what it serves and the job it runs now.

The registry's queue view reads these to say which classes have a live trainer, and which
job each trainer runs. A heartbeat goes out every ``trainer_heartbeat_s``, at once when the
running job changes, and a last one with ``stopping`` when the trainer stops.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import socket
import uuid
from collections.abc import Awaitable, Callable
from dataclasses import dataclass

import structlog
from aiokafka.errors import KafkaError

from sparktrainer.contracts.envelope import OutRecord, encode
from sparktrainer.contracts.events import JobValidated
from sparktrainer.contracts.schedule_events import TrainerHeartbeat
from sparktrainer.contracts.scheduling import GIB

log = structlog.get_logger(__name__)
SOURCE = "sparktrainer/trainer"
CHANGE_POLL_S = 0.5


def trainer_id() -> str:
    """A new trainer's id: host, pid, and a tag (a process may run several trainers)."""
    return f"{socket.gethostname()}/{os.getpid()}/{uuid.uuid4().hex[:6]}"


@dataclass
class Presence:
    """Heartbeats of one trainer.

    :param group: the trainer's consumer group.
    :param classes: the resource classes it serves.
    :param gpus: (name, memory bytes) of each GPU it has.
    :param running: the job it runs now (None when idle).
    :param send: sends one record and waits for the broker.
    :param every_s: seconds between heartbeats.
    """

    group: str
    classes: tuple[str, ...]
    gpus: list[tuple[str, int]]
    running: Callable[[], JobValidated | None]
    send: Callable[[OutRecord], Awaitable[None]]
    every_s: float
    trainer_id: str = ""

    def __post_init__(self) -> None:
        self.trainer_id = self.trainer_id or trainer_id()

    def beat(self, stopping: bool = False) -> TrainerHeartbeat:
        """The heartbeat for now."""
        memory = [m for _, m in self.gpus]
        job = None if stopping else self.running()
        return TrainerHeartbeat(
            trainer_id=self.trainer_id,
            group=self.group,
            classes=list(self.classes),
            gpus=len(memory),
            gpu_memory_gib=round(min(memory, default=0) / GIB, 2),
            devices=[name for name, _ in self.gpus] or ["cpu"],
            running_job_id=job.job_id if job else None,
            running_tenant=job.tenant if job else None,
            running_class=job.resource_class if job else None,
            running_gpus=job.resources.gpus if job else 0,
            every_s=self.every_s,
            stopping=stopping,
        )

    def _running_id(self) -> str | None:
        job = self.running()
        return job.job_id if job else None

    async def _send(self, stopping: bool = False) -> None:
        try:
            await self.send(encode(self.beat(stopping), SOURCE))
        except KafkaError as e:  # a missed heartbeat only ages the queue view's picture
            log.warning("heartbeat_failed", error=type(e).__name__)

    async def run(self) -> None:
        """Beat until cancelled; then a last beat that says the trainer is stopping."""
        last, since = self._running_id(), 0.0
        try:
            await self._send()
            while True:
                await asyncio.sleep(CHANGE_POLL_S)
                since += CHANGE_POLL_S
                if self.running() != last or since >= self.every_s:
                    last, since = self._running_id(), 0.0
                    await self._send()
        except asyncio.CancelledError:
            with contextlib.suppress(Exception):
                await asyncio.wait_for(self._send(stopping=True), 5)
            raise
