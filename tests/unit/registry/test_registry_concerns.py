"""A new read-model concern plugs in by declaring itself: schema, folds, exactly-once offsets."""

from __future__ import annotations

import sqlite3
from pathlib import Path
from typing import Any

import pytest
from test_registry_fold import progress, started  # type: ignore[import-not-found]

from sparktrainer.contracts import topics as t
from sparktrainer.contracts.events import JobProgress
from sparktrainer.registry import db
from sparktrainer.registry.concern import Concern
from sparktrainer.registry.concerns import CONCERNS, PROJECTED_TOPICS
from sparktrainer.registry.fold import Folded, apply, apply_many, folds_by_type
from sparktrainer.registry.jobs import get_job

LC = t.JOBS_LIFECYCLE


def _point(conn: sqlite3.Connection, ev: JobProgress) -> None:
    conn.execute(
        "INSERT OR REPLACE INTO loss_points (job_id, step, loss) VALUES (?, ?, ?)",
        (ev.job_id, ev.step, ev.loss),
    )


def loss_series(conn: sqlite3.Connection, job_id: str) -> list[tuple[int, float]]:
    rows = conn.execute(
        "SELECT step, loss FROM loss_points WHERE job_id = ? ORDER BY step", (job_id,)
    )
    return [(r["step"], r["loss"]) for r in rows]


# What a helper adding "per-job metric series" writes: its own module, nothing else edited.
SERIES = Concern(
    name="loss_series",
    version=1,
    ddl="CREATE TABLE IF NOT EXISTS loss_points "
    "(job_id TEXT, step INTEGER, loss REAL, PRIMARY KEY (job_id, step))",
    topics=(LC,),
    folds={JobProgress: _point},
)
WITH_SERIES = (*CONCERNS, SERIES)
FOLDS = folds_by_type(WITH_SERIES)


@pytest.fixture
def conn() -> sqlite3.Connection:
    return db.open_database(":memory:", WITH_SERIES)


def test_every_concern_folds_its_events_in_one_transaction(conn: sqlite3.Connection) -> None:
    records = [Folded(LC, 0, 0, started()), Folded(LC, 0, 1, progress(epoch=1))]
    records.append(Folded(LC, 0, 2, progress(t=4, epoch=2).model_copy(update={"step": 20})))
    assert apply_many(conn, records, FOLDS) == 3
    assert apply_many(conn, records, FOLDS) == 0  # replayed: nothing counted twice
    assert loss_series(conn, "j1") == [(10, 0.5), (20, 0.5)]
    assert get_job(conn, "j1")["progress"]["step"] == 20  # type: ignore[index]
    assert db.stored_offsets(conn) == {(LC, 0): 3}


def test_a_failing_fold_of_one_concern_rolls_back_all_of_them(conn: sqlite3.Connection) -> None:
    def boom(*_: Any) -> None:
        raise RuntimeError("crash mid-fold")

    folds = {**FOLDS, JobProgress: (*FOLDS[JobProgress][:-1], boom)}  # jobs fold first, then boom
    apply(conn, LC, 0, 0, started(), folds)
    with pytest.raises(RuntimeError):
        apply(conn, LC, 0, 1, progress(epoch=2), folds)
    assert get_job(conn, "j1")["progress"]["epoch"] == 0  # type: ignore[index]
    assert db.stored_offsets(conn) == {(LC, 0): 1}
    assert apply(conn, LC, 0, 1, progress(epoch=2), FOLDS)  # redelivered after the crash
    assert loss_series(conn, "j1") == [(10, 0.5)]


def test_adding_a_concern_rebuilds_the_read_model_from_the_log(tmp_path: Path) -> None:
    path = tmp_path / "r.sqlite3"
    first = db.open_database(path, CONCERNS)
    apply(first, LC, 0, 0, started())
    first.close()
    again = db.open_database(path, CONCERNS)
    assert db.stored_offsets(again) == {(LC, 0): 1}  # same schema: kept
    again.close()
    grown = db.open_database(path, WITH_SERIES)
    assert db.stored_offsets(grown) == {}  # its offsets would skip the new concern's history
    assert get_job(grown, "j1") is None and loss_series(grown, "j1") == []
    assert db.schema_fingerprint(CONCERNS) != db.schema_fingerprint(WITH_SERIES)


def test_wipe_clears_every_concerns_tables(conn: sqlite3.Connection) -> None:
    apply_many(conn, [Folded(LC, 0, 0, started()), Folded(LC, 0, 1, progress())], FOLDS)
    db.wipe(conn)
    assert loss_series(conn, "j1") == [] and get_job(conn, "j1") is None
    assert db.stored_offsets(conn) == {}


def test_projected_topics_are_the_concerns_topics() -> None:
    assert set(PROJECTED_TOPICS) == {topic for c in CONCERNS for topic in c.topics}
    assert set(PROJECTED_TOPICS) == {
        t.MODELS_REGISTERED,
        t.MODELS_CHANGES,
        t.JOBS_SUBMITTED,
        *t.VALIDATED_TOPICS,  # JOBS_VALIDATED among them: the (cpu, normal) route
        t.JOBS_REJECTED,
        t.JOBS_LIFECYCLE,
        t.SWEEPS,
        t.TRAINERS,
    }
