"""A sweep's trials folded into a read model through the real fold: what compare reads.

Shared by the compare bench and the compare tests: every row comes from events applied by
``registry.fold.apply_many`` (the projector's own code), never from INSERTs of our own. Each
trial's curves depend on its learning rate, so runs differ and their numbers can be checked.
"""

from __future__ import annotations

import hashlib
import math
import sqlite3
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from typing import Any

from sparktrainer.contracts.data_identity import DataObject, s3_identity
from sparktrainer.contracts.events import (
    Artifact,
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


def sweep_events(sweep_id: str, trials: int, points: int, epochs: int = 5) -> Iterator[Any]:
    """Every event of a finished sweep of ``trials`` runs with ``points`` step reports each."""
    space = {"learning_rate": {"type": "choice", "values": list(RATES)},
             "hidden": {"type": "choice", "values": list(WIDTHS)}}  # fmt: skip
    config = SweepConfig.model_validate({
        "base": {"type": "train", "framework": "pytorch",
                 "config": {"input_size": 16, "output_size": 2}},
        "space": space, "sampler": "random", "max_trials": trials, "metric": "val_loss",
    })  # fmt: skip
    yield SweepValidated(sweep_id=sweep_id, name=f"sweep {sweep_id}", framework="pytorch",
                         config=config, trials=trials, validated_at=T0)  # fmt: skip
    for n in range(1, trials + 1):
        yield from _trial(sweep_id, n, points, epochs)
    yield SweepEnded(sweep_id=sweep_id, status="completed", best_trial=1,
                     best_job_id=f"{sweep_id}-t001", model_id=sweep_id, value=0.0)  # fmt: skip


def _trial(sweep_id: str, n: int, points: int, epochs: int) -> Iterator[Any]:
    job_id, params = f"{sweep_id}-t{n:03d}", trial_params(n)
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
    for step in range(1, points + 1):
        epoch = min(epochs, 1 + (step - 1) // per_epoch)
        loss = loss_at(params, step / points)
        yield JobProgress(job_id=job_id, attempt=1, at=at, epoch=epoch, total_epochs=epochs,
                          step=step, total_steps=points, loss=loss)  # fmt: skip
        if step % per_epoch == 0 and step // per_epoch <= epochs:
            yield JobProgress(job_id=job_id, attempt=1, at=at, epoch=epoch, total_epochs=epochs,
                              step=step, total_steps=points, loss=loss, val_loss=loss * 1.1,
                              val_accuracy=1 / (1 + loss), phase="epoch")  # fmt: skip
    final = loss_at(params, 1.0)
    metrics = {"val_loss": final * 1.1, "val_accuracy": 1 / (1 + final)}
    end = at + timedelta(seconds=30 + n)
    yield JobCompleted(job_id=job_id, attempt=1, at=end, model_id=job_id, metrics=metrics)
    yield _registered(job_id, n, metrics, end)


def _registered(job_id: str, n: int, metrics: dict[str, float], at: datetime) -> ModelRegistered:
    blob = f"data version {n % 2}".encode()  # two versions of one object: two sha256s
    sha = hashlib.sha256(blob).hexdigest()
    uri = "s3://datasets/trials.npz"
    data = s3_identity(uri, [DataObject(uri=uri, size_bytes=len(blob), sha256=sha,
                                        etag=sha[:32])], {"seed": 0})  # fmt: skip
    return ModelRegistered(
        model_id=job_id, job_id=job_id, name=f"trial {n}", framework="pytorch",
        architecture={"architecture": "custom"},
        artifacts=[Artifact(path="model.pth", size_bytes=1, sha256=sha)],
        storage_prefix=f"models/{job_id}/", metrics=metrics, created_at=at, data=data,
    )  # fmt: skip


def fill(
    conn: sqlite3.Connection, sweep_id: str, trials: int, points: int, batch: int = 5000
) -> int:
    """Fold a sweep's events into ``conn`` (one topic, consecutive offsets); how many."""
    done, pending = 0, []
    for offset, event in enumerate(sweep_events(sweep_id, trials, points)):
        pending.append(Folded(f"bench.{sweep_id}", 0, offset, event))
        if len(pending) >= batch:
            done += apply_many(conn, pending)
            pending = []
    return done + apply_many(conn, pending)
