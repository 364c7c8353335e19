"""A sweep's trials folded into a read model through the real fold: what compare reads.

Shared by the compare bench and the compare tests: every row comes from events applied by
``registry.fold.apply_many`` (the projector's own code), never from INSERTs of our own. Each
trial's curves depend on its learning rate, so runs differ and their numbers can be checked.
"""

from __future__ import annotations

import hashlib
import math
import socket
import sqlite3
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

from sparktrainer.contracts.data_identity import DataObject, s3_identity
from sparktrainer.contracts.events import (
    Artifact,
    JobCancelled,
    JobCompleted,
    JobProgress,
    JobStarted,
    JobValidated,
    ModelRegistered,
)
from sparktrainer.contracts.schedule_events import (
    SweepEnded,
    SweepValidated,
    TrialPlanned,
    TrialStopped,
    TrialSubmitted,
)
from sparktrainer.contracts.sweeps import SweepConfig
from sparktrainer.registry.fold import Folded, apply_many

T0 = datetime(2026, 1, 1, tzinfo=UTC)
RATES = (0.3, 0.1, 0.03, 0.01, 0.003)
WIDTHS = (16, 32, 64)


def trial_params(n: int) -> dict[str, Any]:
    """Trial ``n``'s point in the space (a grid over rates and widths)."""
    return {"learning_rate": RATES[n % len(RATES)], "hidden": WIDTHS[(n // len(RATES)) % 3]}


def loss_at(params: dict[str, Any], fraction: float) -> float:
    """A trial's training loss at a fraction of its run: faster rates fall faster, to a floor."""
    rate = params["learning_rate"]
    return 0.2 + abs(math.log10(rate) + 1.5) * 0.3 + 2.0 * math.exp(-fraction * 30 * rate**0.5)


@dataclass(frozen=True)
class Fill:
    """What a filled sweep looks like: its size, the name its models are versions of (if
    any), and the trial early stopping stops after its second epoch (if any)."""

    trials: int
    points: int
    epochs: int = 5
    register_as: str | None = None
    stop: int | None = None

    def final(self, n: int) -> float:
        """Trial ``n``'s final val_loss (the sweep's metric)."""
        return loss_at(trial_params(n), 1.0) * 1.1

    def best(self) -> int:
        """The trial with the lowest final val_loss among those not stopped (ties: the first)."""
        done = [n for n in range(1, self.trials + 1) if n != self.stop]
        return min(done, key=lambda n: (self.final(n), n))


def sweep_events(sweep_id: str, fill: Fill) -> Iterator[Any]:
    """Every event of a finished sweep: its trials, their curves, ends and models."""
    space = {"learning_rate": {"type": "choice", "values": list(RATES)},
             "hidden": {"type": "choice", "values": list(WIDTHS)}}  # fmt: skip
    config = SweepConfig.model_validate({
        "base": {"type": "train", "framework": "pytorch",
                 "config": {"input_size": 16, "output_size": 2}},
        "space": space, "sampler": "random", "max_trials": fill.trials, "metric": "val_loss",
    })  # fmt: skip
    yield SweepValidated(sweep_id=sweep_id, name=f"sweep {sweep_id}", framework="pytorch",
                         config=config, trials=fill.trials, validated_at=T0)  # fmt: skip
    for n in range(1, fill.trials + 1):
        yield from _trial(sweep_id, n, fill)
    best = fill.best()
    yield SweepEnded(sweep_id=sweep_id, status="completed", best_trial=best,
                     best_job_id=f"{sweep_id}-t{best:03d}", model_id=sweep_id,
                     value=fill.final(best))  # fmt: skip


def _trial(sweep_id: str, n: int, fill: Fill) -> Iterator[Any]:
    job_id, params, epochs, points = (
        f"{sweep_id}-t{n:03d}",
        trial_params(n),
        fill.epochs,
        fill.points,
    )
    at = T0 + timedelta(minutes=n)
    config = {"input_size": 16, "output_size": 2, "hidden_layers": [params["hidden"]],
              "learning_rate": params["learning_rate"], "epochs": epochs}  # fmt: skip
    yield TrialPlanned(sweep_id=sweep_id, trial=n, job_id=job_id, params=params, planned_at=at)
    yield TrialSubmitted(sweep_id=sweep_id, trial=n, job_id=job_id)
    yield JobValidated(job_id=job_id, name=f"trial {n}", type="train", framework="pytorch",
                       config_kind="pytorch.mlp", config=config, validated_at=at)  # type: ignore[arg-type]  # fmt: skip
    yield JobStarted(job_id=job_id, attempt=1, at=at, total_epochs=epochs, name=f"trial {n}",
                     framework="pytorch", config_kind="pytorch.mlp", device="cpu",
                     worker="bench")  # fmt: skip
    per_epoch = max(1, points // epochs)
    last = 2 * per_epoch if n == fill.stop else points
    for step in range(1, last + 1):
        epoch = min(epochs, 1 + (step - 1) // per_epoch)
        loss = loss_at(params, step / points)
        yield JobProgress(job_id=job_id, attempt=1, at=at, epoch=epoch, total_epochs=epochs,
                          step=step, total_steps=points, loss=loss)  # fmt: skip
        if step % per_epoch == 0 and step // per_epoch <= epochs:
            yield JobProgress(job_id=job_id, attempt=1, at=at, epoch=epoch, total_epochs=epochs,
                              step=step, total_steps=points, loss=loss, val_loss=loss * 1.1,
                              val_accuracy=1 / (1 + loss), phase="epoch")  # fmt: skip
    end = at + timedelta(seconds=30 + n)
    if n == fill.stop:
        yield TrialStopped(sweep_id=sweep_id, trial=n, job_id=job_id, rule="median", epoch=2,
                           reason="below the median of the trials at epoch 2", at=end)  # fmt: skip
        yield JobCancelled(job_id=job_id, attempt=1, at=end, reason="stopped early")
        return
    final = loss_at(params, 1.0)
    metrics = {"val_loss": final * 1.1, "val_accuracy": 1 / (1 + final)}
    yield JobCompleted(job_id=job_id, attempt=1, at=end, model_id=job_id, metrics=metrics)
    yield _registered(job_id, n, metrics, end, fill.register_as)


def _registered(
    job_id: str, n: int, metrics: dict[str, float], at: datetime, register_as: str | None
) -> ModelRegistered:
    blob = f"data version {n % 2}".encode()  # two versions of one object: two sha256s
    sha = hashlib.sha256(blob).hexdigest()
    uri = "s3://datasets/trials.npz"
    data = s3_identity(uri, [DataObject(uri=uri, size_bytes=len(blob), sha256=sha,
                                        etag=sha[:32])], {"seed": 0})  # fmt: skip
    return ModelRegistered(
        model_id=job_id, job_id=job_id, name=f"trial {n}", framework="pytorch",
        architecture={"architecture": "custom", "input_size": 16, "output_size": 2,
                      "hidden_layers": [trial_params(n)["hidden"]]},
        artifacts=[Artifact(path="model.pth", size_bytes=1, sha256=sha)],
        storage_prefix=f"models/{job_id}/", metrics=metrics, created_at=at, data=data,
        register_as=register_as,
    )  # fmt: skip


def fill(
    conn: sqlite3.Connection, sweep_id: str, trials: int, points: int, batch: int = 5000,
    **more: Any,
) -> int:  # fmt: skip
    """Fold a sweep's events into ``conn`` (one topic, consecutive offsets); how many.

    ``more``: the other fields of :class:`Fill` (``register_as``, ``stop``, ``epochs``).
    """
    done, pending = 0, []
    for offset, event in enumerate(sweep_events(sweep_id, Fill(trials, points, **more))):
        pending.append(Folded(f"bench.{sweep_id}", 0, offset, event))
        if len(pending) >= batch:
            done += apply_many(conn, pending)
            pending = []
    return done + apply_many(conn, pending)


@contextmanager
def serving(app: Any) -> Iterator[str]:
    """Serve an ASGI app (the dashboard over a filled read model) on a free loopback port."""
    import uvicorn

    sock = socket.socket()
    sock.bind(("127.0.0.1", 0))
    config = uvicorn.Config(app, log_level="warning", lifespan="on")
    server = uvicorn.Server(config)
    thread = threading.Thread(target=server.run, kwargs={"sockets": [sock]}, daemon=True)
    thread.start()
    try:
        for _ in range(200):  # bounded: about 10 s
            if server.started:
                break
            time.sleep(0.05)
        assert server.started, "the dashboard's server did not start"
        yield f"http://127.0.0.1:{sock.getsockname()[1]}/"
    finally:
        server.should_exit = True
        thread.join(timeout=10)
        sock.close()
