"""The metric-history concern's folds: ordered, keyed by step, bounded, continued on resume."""

from __future__ import annotations

import math
import random
import sqlite3
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from test_registry_fold import started  # type: ignore[import-not-found]

from sparktrainer.contracts import topics as t
from sparktrainer.contracts.events import CheckpointSaved, JobProgress, JobStarted, JobValidated
from sparktrainer.registry import db
from sparktrainer.registry.concerns import CONCERNS
from sparktrainer.registry.fold import apply, folds_by_type
from sparktrainer.registry.job_details import JOB_DETAILS, job_details
from sparktrainer.registry.metric_series import (
    METRIC_SERIES,
    job_series,
    kept_steps,
    metric_series_concern,
)

LC = t.JOBS_LIFECYCLE


@pytest.fixture
def conn() -> sqlite3.Connection:
    return db.open_database(":memory:", CONCERNS)


class Log:
    """A partition of jobs.lifecycle: events get increasing offsets, folded exactly once."""

    def __init__(self, conn: sqlite3.Connection, max_points: int | None = None) -> None:
        self.conn, self.offset, self.events = conn, 0, []
        concerns = [c for c in CONCERNS if c is not METRIC_SERIES]
        if max_points is not None:
            concerns.append(metric_series_concern(max_points))
        self.folds = folds_by_type(concerns if max_points is not None else CONCERNS)

    def send(self, *events: Any) -> None:
        for ev in events:
            apply(self.conn, LC, 0, self.offset, ev, self.folds)
            self.events.append(ev)
            self.offset += 1

    def replay(self) -> None:
        """The same events again at new offsets (``sparktrainer replay`` onto the topic)."""
        self.send(*list(self.events))


def start(attempt: int = 1, step: int | None = None, job: str = "j1") -> JobStarted:
    resumed = {"resumed_from_step": step, "resumed_from_epoch": None if step is None else 1}
    return started(job, attempt=attempt).model_copy(update=resumed)


def report(step: int, loss: float, attempt: int = 1, phase: str = "step", **kw: Any):
    return JobProgress(
        job_id=kw.pop("job", "j1"),
        attempt=attempt,
        epoch=1 + step // 10,
        total_epochs=3,
        step=step,
        total_steps=30,
        loss=loss,
        learning_rate=0.1,
        phase=phase,
        **kw,
    )


def series(conn: sqlite3.Connection, name: str = "loss/train", job: str = "j1") -> list[Any]:
    found = job_series(conn, job)
    assert found is not None
    s = found["series"].get(name, {"steps": [], "values": []})
    return list(zip(s["steps"], s["values"], strict=True))


def test_points_in_step_order_with_epoch_series_apart(conn) -> None:
    log = Log(conn)
    log.send(start(), report(1, 2.0), report(5, 1.5), report(10, 1.2))
    log.send(report(10, 1.3, phase="epoch", val_loss=1.25, val_accuracy=0.6))
    assert series(conn) == [(1, 2.0), (5, 1.5), (10, 1.2)]
    assert series(conn, "loss/train_epoch") == [(10, 1.3)]
    assert series(conn, "loss/val") == [(10, 1.25)]
    assert series(conn, "accuracy/val") == [(10, 0.6)]
    assert [s for s, _ in series(conn, "learning_rate")] == [1, 5, 10]


def test_a_redelivered_or_replayed_report_adds_no_point(conn) -> None:
    log = Log(conn)
    log.send(start(), report(1, 2.0), report(2, 1.8))
    cursor = job_series(conn, "j1")["cursor"]
    log.replay()
    assert series(conn) == [(1, 2.0), (2, 1.8)]
    assert job_series(conn, "j1")["cursor"] == cursor  # nothing changed at all


def test_a_resumed_attempt_replaces_what_came_after_its_checkpoint(conn) -> None:
    log = Log(conn)
    log.send(start(), *(report(s, 3.0 - s / 10) for s in range(1, 9)))  # killed after step 8
    log.send(start(attempt=2, step=5), report(6, 2.45, attempt=2), report(7, 2.35, attempt=2))
    log.send(report(8, 9.9, attempt=1))  # the dead owner's last words, arriving late
    log.send(report(9, 2.1, attempt=2))
    steps = [s for s, _ in series(conn)]
    assert steps == [1, 2, 3, 4, 5, 6, 7, 9]  # 8 of attempt 1 is gone, no step twice
    assert dict(series(conn))[6] == 2.45
    assert job_series(conn, "j1")["attempt"] == 2


def test_an_attempt_that_starts_over_drops_every_point(conn) -> None:
    log = Log(conn)
    log.send(start(), report(1, 2.0), report(2, 1.9), start(attempt=2))
    assert series(conn) == []
    log.send(report(1, 2.2, attempt=2))
    assert series(conn) == [(1, 2.2)]


def test_thinning_bounds_each_series_and_keeps_first_last_min_and_max(conn) -> None:
    rng = random.Random(7)
    values = {s: 2.0 + math.sin(s / 9) + rng.random() for s in range(1, 401)}
    values[137], values[250] = -5.0, 9.0  # the extremes
    log = Log(conn, max_points=40)
    log.send(start(), *(report(s, v) for s, v in values.items()))
    kept = series(conn)
    assert len(kept) <= 40
    steps = [s for s, _ in kept]
    assert steps == sorted(steps) and steps[0] == 1 and steps[-1] == 400
    assert (137, -5.0) in kept and (250, 9.0) in kept
    before = job_series(conn, "j1")
    log.replay()  # a replay must not bring thinned points back
    assert job_series(conn, "j1")["series"] == before["series"]


def test_a_full_rebuild_folds_to_the_same_series(conn) -> None:
    log = Log(conn, max_points=30)
    events = [start(), *(report(s, 1 / s) for s in range(1, 120)), start(attempt=2, step=80)]
    events += [report(s, 0.5 / s, attempt=2) for s in range(81, 150)]
    log.send(*events)
    first = job_series(conn, "j1")
    again = db.open_database(":memory:", CONCERNS)
    Log(again, max_points=30).send(*events)
    assert job_series(again, "j1") == first


def test_since_returns_what_changed_and_says_when_to_start_over(conn) -> None:
    log = Log(conn, max_points=8)
    log.send(start(), report(1, 2.0), report(2, 1.9))
    cursor = job_series(conn, "j1")["cursor"]
    log.send(report(3, 1.8))
    new = job_series(conn, "j1", since=cursor)
    assert not new["reset"] and new["series"]["loss/train"]["steps"] == [3]
    cursor = new["cursor"]
    log.send(*(report(s, 2.0 - s / 100) for s in range(4, 12)))  # past 8 points: thinned
    after = job_series(conn, "j1", since=cursor)
    assert after["reset"] and after["series"]["loss/train"]["steps"][0] == 1


def test_generation_jobs_show_token_accuracy_and_perplexity(conn) -> None:
    log = Log(conn)
    hf = JobValidated(
        job_id="lm",
        name="lm",
        type="train",
        framework="huggingface",
        config_kind="huggingface.local",
        config={"model_path": "/m", "model_source": "local", "task_type": "generation"},
    )
    log.send(hf, report(4, 2.0, job="lm"))
    log.send(report(4, 2.1, job="lm", phase="epoch", val_loss=1.0, val_accuracy=0.3))
    shown = job_series(conn, "lm")["series"]
    assert shown["perplexity/train"]["values"] == [pytest.approx(math.e**2)]
    assert shown["perplexity/val"]["values"] == [pytest.approx(math.e)]
    assert shown["token_accuracy/val"]["values"] == [0.3] and "accuracy/val" not in shown


def test_absurd_numbers_are_ignored_not_fatal(conn) -> None:
    log = Log(conn)
    log.folds = folds_by_type([METRIC_SERIES, JOB_DETAILS])  # the jobs row is another concern's
    log.send(start(), report(2**62, 1.0), report(1, 1.0), report(2, 0.9, attempt=2**70))
    log.send(start(attempt=2**70, step=2**70), start(attempt=3, step=-5))
    log.send(CheckpointSaved(job_id="j1", epoch=2**70, step=1, key="k", size_bytes=2**80))
    assert series(conn) == [(1, 1.0)] and job_details(conn, "j1")["checkpoints"] == []


def test_kept_steps_of_short_series_keep_everything() -> None:
    assert kept_steps([(1, 1.0), (2, 0.5)]) == {1, 2}
    assert kept_steps([(s, float(s)) for s in range(10)]) >= {0, 9}


_any_int = st.integers(min_value=-(2**70), max_value=2**70)
_value = st.one_of(st.none(), st.floats(allow_nan=False, allow_infinity=False))
_events = st.one_of(
    st.builds(
        JobProgress,
        job_id=st.sampled_from(["j1", "j2"]),
        attempt=_any_int,
        epoch=_any_int,
        total_epochs=_any_int,
        step=_any_int,
        total_steps=_any_int,
        loss=_value,
        accuracy=_value,
        val_loss=_value,
        learning_rate=_value,
        phase=st.sampled_from(["step", "epoch"]),
    ),
    st.builds(
        lambda a, s, e: start(1).model_copy(
            update={"attempt": a, "resumed_from_step": s, "resumed_from_epoch": e}
        ),
        _any_int,
        st.one_of(st.none(), _any_int),
        st.one_of(st.none(), _any_int),
    ),
    st.builds(
        CheckpointSaved,
        job_id=st.just("j1"),
        attempt=_any_int,
        epoch=_any_int,
        step=_any_int,
        key=st.text(max_size=50),
        size_bytes=_any_int,
    ),
)


@settings(max_examples=60, deadline=None)
@given(st.lists(_events, max_size=30))
def test_any_lifecycle_events_fold_without_error_and_stay_bounded(events) -> None:
    conn = db.open_database(":memory:", CONCERNS)
    log = Log(conn, max_points=8)
    log.folds = folds_by_type([metric_series_concern(8), JOB_DETAILS])
    log.send(*events)
    for job in ("j1", "j2"):
        found = job_series(conn, job)
        for s in (found or {"series": {}})["series"].values():
            assert len(s["steps"]) <= 8 and s["steps"] == sorted(set(s["steps"]))
