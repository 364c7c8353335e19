"""Every stored field of the read model holds what the event that wrote it said.

One story folds an event of every type the concerns fold, each field given a value no other
field has (so a swapped pair, like a checkpoint's key and size_bytes, cannot pass). After each
event, every cell of every table that the event changed is checked against the event: by name
(a column named like a field of the event), by a key of a JSON column, or by the expectation
written for it below. A changed cell with no check fails the test, so a new column or a new
event type must say where its value comes from.
"""

from __future__ import annotations

import json
import sqlite3
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from typing import Any

from pydantic import BaseModel

from sparktrainer.contracts.data_identity import DataObject, s3_identity
from sparktrainer.contracts.events import (
    Artifact,
    CheckpointSaved,
    JobCancelled,
    JobCompleted,
    JobFailed,
    JobPreempted,
    JobProgress,
    JobRejected,
    JobStarted,
    JobValidated,
    ModelRegistered,
)
from sparktrainer.contracts.model_events import (
    ModelAliasRemoved,
    ModelAliasSet,
    ModelArchived,
    ModelDeleted,
    ModelPurged,
)
from sparktrainer.contracts.schedule_events import (
    SweepEnded,
    SweepValidated,
    TrainerHeartbeat,
    TrialPlanned,
    TrialRejected,
    TrialStopped,
    TrialSubmitted,
)
from sparktrainer.contracts.sweeps import SweepConfig
from sparktrainer.registry import store
from sparktrainer.registry.concerns import CONCERNS
from sparktrainer.registry.fold import apply
from sparktrainer.registry.job_folds import Submission
from sparktrainer.registry.rows import iso

T0 = datetime(2026, 3, 1, tzinfo=UTC)
MLP = {"input_size": 4, "output_size": 2}


def at(seconds: float) -> datetime:
    return T0 + timedelta(seconds=seconds)


def _sweep_config() -> SweepConfig:
    return SweepConfig.model_validate({
        "base": {"type": "train", "framework": "pytorch", "config": MLP},
        "space": {"learning_rate": {"type": "choice", "values": [0.1, 0.01]}},
        "sampler": "grid", "max_trials": 2, "metric": "val_accuracy", "direction": "maximize",
    })  # fmt: skip


def story() -> list[Any]:
    """One event of every folded type, every field a value of its own."""
    ckpt = dict(job_id="j1", attempt=2, at=at(5), epoch=3, step=47, key="ckpt/j1/47.pt")
    return [
        Submission(job_id="j1", name="submitted-name", type="train", framework="pytorch",
                   at=at(1)),
        JobValidated(job_id="j1", name="validated-name", type="train", framework="pytorch",
                     config_kind="pytorch.mlp", config=MLP, description="d1", tags=["t1"],
                     license="mit", domain="dom", submitted_by="sam", warnings=["w1"],
                     validated_at=at(2), register_as="reg-name", priority="high",
                     resource_class="gpu-large"),
        JobStarted(job_id="j1", attempt=2, at=at(3), name="started-name", framework="pytorch",
                   config_kind="pytorch.mlp", device="cpu:0", worker="worker-7",
                   resumed_from_epoch=1, resumed_from_step=9, total_epochs=5),
        JobProgress(job_id="j1", attempt=2, at=at(4), epoch=2, total_epochs=5, step=31,
                    total_steps=83, loss=0.61, accuracy=0.71, val_loss=0.62, val_accuracy=0.72,
                    learning_rate=0.013, samples_per_s=123.5, eta_s=41.5, phase="epoch"),
        CheckpointSaved(**ckpt, size_bytes=128144, upload_s=0.25),
        JobCompleted(job_id="j1", attempt=2, at=at(6), model_id="m1",
                     metrics={"val_loss": 0.33, "val_accuracy": 0.88}, duration_s=12.5),
        ModelRegistered(model_id="m1", job_id="j1", name="model-name", framework="pytorch",
                        task="classification", architecture={"architecture": "custom"},
                        artifacts=[Artifact(path="model.pth", size_bytes=999, sha256="ab" * 32)],
                        storage_prefix="models/m1/", metrics={"val_loss": 0.34},
                        lineage=["m0"], created_at=at(7), tags=["mt"], license="apache-2.0",
                        domain="mdom", description="md", register_as="reg-name",
                        data=s3_identity("s3://b/d.npz", [DataObject(
                            uri="s3://b/d.npz", size_bytes=77, sha256="cd" * 32, etag="e1",
                            version_id="v1")], {"seed": 3})),
        ModelAliasSet(name="reg-name", alias="prod", version=1, by="alice", at=at(8),
                      reason="ship it"),
        ModelAliasRemoved(name="reg-name", alias="prod", by="bob", at=at(9), reason="rollback"),
        ModelArchived(model_id="m1", by="carol", at=at(10), reason="old"),
        ModelDeleted(model_id="m1", by="dave", at=at(11), reason="gone"),
        ModelPurged(model_id="m1", by="janitor", at=at(12), reason="kept 7 days",
                    files_removed=3),
        JobRejected(job_id="j2", errors=["e2"], warnings=["w2"], name="rejected-name",
                    raw_excerpt="{", rejected_at=at(13)),
        JobFailed(job_id="j3", attempt=4, at=at(14), reason="boom", error_type="TrainingError"),
        JobCancelled(job_id="j4", attempt=1, at=at(15), reason="asked by eve"),
        JobPreempted(job_id="j5", attempt=3, at=at(15), reason="SIGTERM", step=77),
        SweepValidated(sweep_id="sw", name="sweep-name", framework="pytorch",
                       config=_sweep_config(), trials=2, validated_at=at(16)),
        TrialPlanned(sweep_id="sw", trial=1, job_id="sw-t001", params={"learning_rate": 0.1},
                     planned_at=at(17)),
        TrialSubmitted(sweep_id="sw", trial=1, job_id="sw-t001"),
        TrialStopped(sweep_id="sw", trial=1, job_id="sw-t001", rule="median", epoch=6,
                     reason="worse than the median", at=at(18)),
        TrialRejected(sweep_id="sw", trial=1, job_id="sw-t001", errors=["id taken"], at=at(18)),
        SweepEnded(sweep_id="sw", status="completed", best_trial=1, best_job_id="sw-t001",
                   model_id="m1", value=0.5, reason="all trials ended", at=at(19)),
        TrainerHeartbeat(trainer_id="tr-1", group="grp", classes=["gpu-large", "cpu"], gpus=2,
                         gpu_memory_gib=39.5, devices=["cuda:0", "cuda:1"],
                         running_job_id="j1", running_tenant="team-a", running_class="gpu",
                         running_gpus=3, every_s=7.5, stopping=True, at=at(20)),
    ]  # fmt: skip


Expect = Callable[[Any, dict[str, Any]], object]
# Cells whose value is not a field of the same name: where each comes from.
DERIVED: dict[tuple[type, str, str], Expect] = {
    # the job row: each event moves status and its time, and touches updated_at
    **{(k, "jobs", "status"): (lambda ev, row: _status(ev)) for k in
       (Submission, JobValidated, JobStarted, JobCompleted, JobFailed, JobCancelled,
        JobRejected)},
    **{(k, "jobs", "status_at"): (lambda ev, row: iso(_when(ev))) for k in
       (Submission, JobValidated, JobStarted, JobCompleted, JobFailed, JobCancelled,
        JobRejected)},
    **{(k, "jobs", "created_at"): (lambda ev, row: iso(_when(ev))) for k in
       (Submission, JobRejected, JobFailed, JobCancelled)},
    **{(k, "jobs", "updated_at"): (lambda ev, row: iso(_when(ev))) for k in
       (Submission, JobValidated, JobStarted, JobProgress, CheckpointSaved, JobCompleted,
        JobFailed, JobCancelled, JobRejected, ModelRegistered)},
    (JobStarted, "jobs", "progress"): lambda ev, row: {"epoch": ev.resumed_from_epoch,
                                                       "total_epochs": ev.total_epochs},
    (JobProgress, "jobs", "progress"): lambda ev, row: ev.model_dump(
        mode="json", exclude={"job_id", "attempt"}),
    (CheckpointSaved, "jobs", "checkpoint"): lambda ev, row: {
        "epoch": ev.epoch, "step": ev.step, "key": ev.key, "size_bytes": ev.size_bytes},
    (JobFailed, "jobs", "reason"): lambda ev, row: f"{ev.error_type}: {ev.reason}",
    (JobPreempted, "jobs", "reason"): lambda ev, row: f"preempted at step {ev.step}: {ev.reason}",
    **{(JobPreempted, "jobs", c): (lambda ev, row: iso(_when(ev))) for c in
       ("status_at", "created_at", "updated_at")},
    (JobPreempted, "jobs", "status"): lambda ev, row: "running",
    **{(k, "jobs", c): (lambda ev, row: []) for k in
       (Submission, JobFailed, JobCancelled, JobPreempted, SweepValidated)
       for c in ("errors", "warnings")},
    **{(k, "jobs", "attempt"): (lambda ev, row: 1) for k in
       (Submission, JobRejected, SweepValidated)},
    # a sweep is listed with the jobs, under its own id
    (SweepValidated, "jobs", "job_id"): lambda ev, row: ev.sweep_id,
    **{(SweepValidated, "jobs", c): (lambda ev, row: "sweep") for c in ("type", "config_kind")},
    **{(SweepValidated, "jobs", c): (lambda ev, row: iso(ev.validated_at)) for c in
       ("status_at", "created_at", "updated_at")},
    (SweepValidated, "jobs", "status"): lambda ev, row: "validated",
    # the model's row, its names and its retirement
    (ModelRegistered, "models", "status"): lambda ev, row: "live",
    (ModelRegistered, "models", "registered_name"): lambda ev, row: ev.register_as,
    (ModelRegistered, "models", "version"): lambda ev, row: 1,
    (ModelRegistered, "model_tags", "tag"): lambda ev, row: ev.tags[0],
    (ModelRegistered, "model_versions", "name"): lambda ev, row: ev.register_as,
    (ModelRegistered, "model_versions", "version"): lambda ev, row: 1,
    (ModelRegistered, "model_versions", "registered_at"): lambda ev, row: iso(ev.created_at),
    (ModelRegistered, "model_retirement", "status"): lambda ev, row: "live",
    (ModelRegistered, "name_owners", "name"): lambda ev, row: ev.register_as,  # its owner
    (ModelAliasSet, "model_aliases", "set_by"): lambda ev, row: ev.by,
    (ModelAliasSet, "model_aliases", "set_at"): lambda ev, row: iso(ev.at),
    **{(k, "alias_history", "event_id"): (lambda ev, row: ev.event_id()) for k in
       (ModelAliasSet, ModelAliasRemoved)},
    (ModelAliasSet, "alias_history", "seq"): lambda ev, row: 1,
    (ModelAliasRemoved, "alias_history", "seq"): lambda ev, row: 2,
    (ModelAliasSet, "alias_history", "action"): lambda ev, row: "set",
    (ModelAliasRemoved, "alias_history", "action"): lambda ev, row: "removed",
    (ModelAliasSet, "alias_history", "previous_version"): lambda ev, row: None,
    (ModelAliasRemoved, "alias_history", "previous_version"): lambda ev, row: 1,
    (ModelAliasRemoved, "alias_history", "version"): lambda ev, row: None,
    **{(k, t, "status"): (lambda ev, row: _retired(ev)) for k in
       (ModelArchived, ModelDeleted, ModelPurged) for t in ("models", "model_retirement")},
    (ModelArchived, "model_retirement", "archived_by"): lambda ev, row: ev.by,
    (ModelArchived, "model_retirement", "archived_at"): lambda ev, row: iso(ev.at),
    (ModelArchived, "model_retirement", "archive_reason"): lambda ev, row: ev.reason,
    (ModelDeleted, "model_retirement", "deleted_by"): lambda ev, row: ev.by,
    (ModelDeleted, "model_retirement", "deleted_at"): lambda ev, row: iso(ev.at),
    (ModelDeleted, "model_retirement", "delete_reason"): lambda ev, row: ev.reason,
    (ModelPurged, "model_retirement", "files_removed_at"): lambda ev, row: iso(ev.at),
    # the metric series of the job (the progress event's numbers, one series each)
    (JobValidated, "metric_jobs", "task"): lambda ev, row: "classification",
    (JobValidated, "metric_jobs", "attempt"): lambda ev, row: 0,
    (JobProgress, "metric_series", "last_step"): lambda ev, row: ev.step,
    (JobProgress, "metric_series", "points"): lambda ev, row: 1,
    **{(JobProgress, "metric_series", f"{end}_value"): lambda ev, row: _series_value(
        ev, row["series"]) for end in ("last", "min", "max")},  # one point: all three are it
    (JobProgress, "metric_points", "value"): lambda ev, row: _series_value(ev, row["series"]),
    # the queue and the trainers
    (JobValidated, "queue", "topic"): lambda ev, row: "sparktrainer.jobs.validated.gpu-large.high",
    (JobValidated, "queue", "gpus"): lambda ev, row: ev.resources.gpus,
    (TrainerHeartbeat, "trainers", "grp"): lambda ev, row: ev.group,
    (TrainerHeartbeat, "trainers", "seen_at"): lambda ev, row: iso(ev.at),
    # sweeps and trials
    (SweepValidated, "sweeps", "sampler"): lambda ev, row: ev.config.sampler,
    (SweepValidated, "sweeps", "metric"): lambda ev, row: ev.config.metric,
    (SweepValidated, "sweeps", "direction"): lambda ev, row: ev.config.direction,
    (SweepValidated, "sweeps", "max_concurrent"): lambda ev, row: ev.config.max_concurrent,
    (SweepValidated, "sweeps", "early_stopping"): lambda ev, row: ev.config.early_stopping.rule,
    (SweepEnded, "sweeps", "ended"): lambda ev, row: ev.model_dump(mode="json"),
    (TrialPlanned, "trials", "submitted"): lambda ev, row: 0,
    (TrialSubmitted, "trials", "submitted"): lambda ev, row: 1,
    (TrialStopped, "trials", "stopped"): lambda ev, row: ev.model_dump(
        mode="json", include={"rule", "epoch", "reason"}),
    (TrialRejected, "trials", "rejected"): lambda ev, row: "; ".join(ev.errors),
}  # fmt: skip
# Cells the read model keeps for itself (change counters, names it gives): no event field.
OWN = {
    ("metric_jobs", "seq"): "counts the job's changes, for `since` reads",
    ("metric_jobs", "reset_seq"): "the change that last started the series over",
    ("metric_points", "seq"): "the change that wrote the point",
    ("metric_points", "series"): "the series' name; its value is checked against its field",
    ("metric_series", "series"): "the series' name, as in metric_points",
}
# A series' checked value is the one its progress field carries.
SERIES_FIELDS = {"loss/train": "loss", "accuracy/train": "accuracy", "loss/val": "val_loss",
                 "loss/train_epoch": "loss", "accuracy/train_epoch": "accuracy",
                 "accuracy/val": "val_accuracy", "learning_rate": "learning_rate",
                 "samples_per_s": "samples_per_s"}  # fmt: skip


def _when(ev: Any) -> datetime:
    for name in ("at", "validated_at", "rejected_at", "created_at"):
        if hasattr(ev, name):
            return getattr(ev, name)  # type: ignore[no-any-return]
    raise AssertionError(f"{type(ev).__name__} has no time")


def _status(ev: Any) -> str:
    if isinstance(ev, Submission):
        return "submitted"
    if isinstance(ev, JobValidated):
        return "validated"
    if isinstance(ev, JobRejected):
        return "rejected"
    return str(ev.status)


def _retired(ev: Any) -> str:
    return "archived" if isinstance(ev, ModelArchived) else "deleted"


def _series_value(ev: JobProgress, series: str) -> object:
    field = SERIES_FIELDS.get(series)
    assert field is not None, f"series {series!r} has no check: add it to SERIES_FIELDS"
    return getattr(ev, field)


def _plain(value: object) -> object:
    """An event's value as the read model stores it (times ISO, models and lists as JSON)."""
    if isinstance(value, datetime):
        return iso(value)
    if isinstance(value, BaseModel):
        return value.model_dump(mode="json")
    if isinstance(value, bool):
        return int(value)
    if isinstance(value, list):
        return [_plain(v) for v in value]
    if isinstance(value, dict):
        return {k: _plain(v) for k, v in value.items()}
    return value


def _stored(cell: object, expected: object) -> object:
    """A cell read back: JSON text is compared as what it encodes."""
    if isinstance(cell, str) and isinstance(expected, (list, dict)):
        try:
            return json.loads(cell)
        except json.JSONDecodeError:
            return cell
    return cell


def _tables(conn: sqlite3.Connection) -> list[str]:
    rows = conn.execute("SELECT name FROM sqlite_master WHERE type = 'table'")
    owned = {s.split()[5] for c in CONCERNS for s in c.statements() if " TABLE " in s}
    return sorted(r[0] for r in rows if r[0] in owned)


def _snapshot(conn: sqlite3.Connection) -> dict[tuple[str, str], dict[str, Any]]:
    """Every row of every concern table, keyed by table and primary key."""
    out: dict[tuple[str, str], dict[str, Any]] = {}
    for table in _tables(conn):
        pk = [r["name"] for r in conn.execute(f"PRAGMA table_info({table})") if r["pk"]]
        for row in conn.execute(f"SELECT * FROM {table}"):
            key = "/".join(str(row[c]) for c in pk) if pk else str(tuple(row))
            out[(table, key)] = dict(row)
    return out


def _check(ev: Any, table: str, row: dict[str, Any], changed: list[str]) -> list[str]:
    """What is wrong in the changed cells of one row (empty when all agree with the event)."""
    wrong = []
    for column in changed:
        rule = DERIVED.get((type(ev), table, column))
        if (table, column) in OWN:
            continue
        if rule is not None:
            expected = _plain(rule(ev, row))
        elif column in getattr(type(ev), "model_fields", {}) or hasattr(ev, column):
            expected = _plain(getattr(ev, column))
        else:
            wrong.append(f"{table}.{column} = {row[column]!r} has no check")
            continue
        if _stored(row[column], expected) != expected:
            wrong.append(f"{table}.{column} = {row[column]!r}, the event said {expected!r}")
    return wrong


def test_every_stored_field_holds_what_its_event_said() -> None:
    conn = store.connect(":memory:")
    seen: set[type] = set()
    wrong: list[str] = []
    for offset, ev in enumerate(story()):
        before = _snapshot(conn)
        assert apply(conn, "any-topic", 0, offset, ev)
        for (table, key), row in _snapshot(conn).items():
            old = before.get((table, key), {})
            changed = [c for c, v in row.items() if (table, key) not in before or old[c] != v]
            changed = [c for c in changed if row[c] is not None or (table, key) in before]
            wrong += [f"{type(ev).__name__}: {w}" for w in _check(ev, table, row, changed)]
        seen.add(type(ev))
    assert wrong == [], "\n".join(wrong)
    folded = {k for c in CONCERNS for k in c.folds}
    assert folded <= seen, f"event types the story does not fold: {folded - seen}"
