"""The job's TensorBoard files, read back with TensorBoard's own event reader."""

from __future__ import annotations

import shutil
from pathlib import Path

from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

from sparktrainer.contracts.events import JobProgress
from sparktrainer.training.job.scalars import ScalarLog


def report(step: int, loss: float, **kw) -> JobProgress:
    return JobProgress(
        job_id="j", epoch=1, total_epochs=1, step=step, total_steps=20, loss=loss, **kw
    )


def read(folder: Path) -> EventAccumulator:
    run = EventAccumulator(str(folder))
    run.Reload()
    return run


def test_a_resumed_run_purges_what_came_after_its_checkpoint_and_goes_on(tmp_path) -> None:
    first = ScalarLog(tmp_path / "a1", None)
    for step in range(1, 11):
        first.write(report(step, 1.0))
    snapshot = first.snapshot(tmp_path / "at-step-10")
    for step in range(11, 15):  # logged, then lost with the worker
        first.write(report(step, 9.0))
    first.close()
    assert set(snapshot) == {p.name for p in (tmp_path / "a1").iterdir()}
    resumed_dir = tmp_path / "a2"
    shutil.copytree(tmp_path / "a1", resumed_dir)  # the files the latest upload carried
    second = ScalarLog(resumed_dir, None)
    second.resume_at(10)
    for step in range(11, 13):
        second.write(report(step, 0.5))
    files = second.close()
    assert len(files) == 2
    events = read(resumed_dir).Scalars("loss/train")
    assert [e.step for e in events] == list(range(1, 13))
    assert [e.value for e in events] == [1.0] * 10 + [0.5] * 2


def test_generation_jobs_log_perplexity_and_epoch_series(tmp_path) -> None:
    log = ScalarLog(tmp_path, "generation")
    log.write(report(4, 2.0, phase="epoch", val_loss=1.0, val_accuracy=0.25))
    log.close()
    tags = set(read(tmp_path).Tags()["scalars"])
    assert tags == {"loss/train_epoch", "loss/val", "perplexity/val", "token_accuracy/val"}
    assert read(tmp_path).Scalars("perplexity/val")[0].value > 2.7


def test_nothing_is_written_after_close(tmp_path) -> None:
    log = ScalarLog(tmp_path, None)
    log.close()
    log.write(report(1, 1.0))
    assert not list(tmp_path.iterdir())
