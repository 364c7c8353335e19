"""The line `submit --wait` / `jobs watch` print per event when stderr is not a terminal."""

from __future__ import annotations

from collections.abc import AsyncIterator

from sparktrainer.cli.common import err, out
from sparktrainer.cli.progress import JobView, follow_to_end
from sparktrainer.contracts.events import (
    CheckpointSaved,
    JobCompleted,
    JobProgress,
    JobValidated,
    ParentRef,
)

VALIDATED = JobValidated(
    job_id="j1", name="tune", type="finetune", framework="pytorch", config_kind="pytorch.mlp",
    config={"input_size": 4, "output_size": 2}, register_as="digits", priority="high",
    parent_ref=ParentRef(ref="digits@latest", model_id="m7", name="digits", version=3),
    warnings=["epochs capped at 100"],
)  # fmt: skip


def _lines(*events: object) -> list[str]:
    with err.capture() as captured, JobView("j1", as_json=False) as view:
        assert view.plain  # pytest's stderr is no terminal
        for event in events:
            view.update(event)
    return captured.get().splitlines()


def test_each_event_line_says_its_facts() -> None:
    validated, checkpoint, step, epoch = _lines(
        VALIDATED,
        CheckpointSaved(
            job_id="j1", epoch=2, step=40, key="checkpoints/j1/latest.pt", size_bytes=128144
        ),
        JobProgress(
            job_id="j1",
            epoch=1,
            total_epochs=2,
            step=5,
            total_steps=10,
            loss=0.5,
            accuracy=0.75,
            eta_s=3,
        ),
        JobProgress(
            job_id="j1",
            epoch=1,
            total_epochs=2,
            step=10,
            total_steps=10,
            loss=0.4,
            accuracy=0.8,
            val_loss=0.45,
            val_accuracy=0.7,
            phase="epoch",
        ),
    )
    assert validated == (
        "job.validated pytorch.mlp for class cpu, priority high; parent digits@latest = m7; "
        "registers as digits; warning: epochs capped at 100"
    )
    assert (
        checkpoint
        == "job.checkpoint-saved epoch 2 step 40: checkpoints/j1/latest.pt (128,144 bytes)"
    )
    assert step == "job.progress epoch 1/2 step 5/10 train loss 0.5000 acc 0.7500 ETA 0:03"
    assert "train loss 0.4000 acc 0.8000 val_loss 0.4500 val_acc 0.7000" in epoch


def test_the_end_line_says_the_model_its_parent_and_its_name() -> None:
    with out.capture() as captured, JobView("j1", as_json=False) as view:
        view.update(VALIDATED)
        view.update(JobCompleted(job_id="j1", model_id="j1", metrics={"val_accuracy": 0.91}))
        view.done("completed")
    assert captured.get().strip() == (
        "completed j1: model j1 (val_accuracy 0.91); fine-tuned from digits@latest = m7; "
        "registered under digits"
    )


async def test_the_end_line_names_the_version_the_read_model_gave() -> None:
    """submit --wait looks the version up once the job completed (the event has none)."""
    asked: list[str] = []

    async def name_version(model_id: str) -> str:
        asked.append(model_id)
        return "digits:3"

    class Follower:
        job_id = "j1"

        async def events(self, timeout_s: float | None) -> AsyncIterator[object]:
            for event in (VALIDATED, JobCompleted(job_id="j1", model_id="j1", metrics={})):
                yield event

    with out.capture() as captured:
        code = await follow_to_end(Follower(), False, None, name_version)  # type: ignore[arg-type]
    assert code == 0 and asked == ["j1"]
    assert (
        captured.get()
        .strip()
        .endswith("fine-tuned from digits@latest = m7; registered as digits:3")
    )
