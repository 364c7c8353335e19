"""Resume state round trips, and a file with a pickle payload is refused without running it."""

from __future__ import annotations

import os
import random
from pathlib import Path

import numpy as np
import pytest
import torch

from sparktrainer.errors import TrainingError, UnsafeArtifactError
from sparktrainer.training.checkpoint import ResumeState, capture_rng, restore_rng, safe_load


class Payload:
    """Runs a command when unpickled: exactly what must never happen."""

    def __init__(self, marker: Path) -> None:
        self.marker = marker

    def __reduce__(self):
        return (os.system, (f"touch {self.marker}",))


def test_resume_state_round_trips_with_rng(tmp_path: Path) -> None:
    model = torch.nn.Linear(3, 2)
    opt = torch.optim.Adam(model.parameters())
    model(torch.randn(4, 3)).sum().backward()
    opt.step()
    state = ResumeState(
        epoch=2,
        step=17,
        batch_in_epoch=3,
        model=model.state_dict(),
        optimizer=opt.state_dict(),
        best_val_loss=0.5,
        best_epoch=2,
        history=[{"epoch": 1.0, "loss": 1.0}],
    )
    expected = (torch.rand(3), np.random.rand(2), random.random())
    loaded = ResumeState.load(state.save(tmp_path / "r.pt"))
    assert (loaded.epoch, loaded.step, loaded.batch_in_epoch) == (2, 17, 3)
    assert torch.equal(loaded.model["weight"], model.state_dict()["weight"])
    assert loaded.optimizer["state"][0]["exp_avg"].shape == (2, 3)
    assert loaded.history == [{"epoch": 1.0, "loss": 1.0}]
    restore_rng(loaded.rng)
    assert torch.equal(torch.rand(3), expected[0])
    assert np.array_equal(np.random.rand(2), expected[1])
    assert random.random() == expected[2]


def test_pickle_payload_checkpoint_is_refused_and_runs_nothing(tmp_path: Path) -> None:
    marker = tmp_path / "pwned"
    evil = tmp_path / "latest.pt"
    torch.save({"format": "sparktrainer.resume.v1", "model": Payload(marker)}, evil)
    with pytest.raises(UnsafeArtifactError, match="refused"):
        ResumeState.load(evil)
    with pytest.raises(UnsafeArtifactError):
        safe_load(evil, "model.pth")
    assert not marker.exists()


def test_foreign_or_corrupt_files_are_clear_errors(tmp_path: Path) -> None:
    other = tmp_path / "other.pt"
    torch.save({"weights": torch.zeros(1)}, other)
    with pytest.raises(TrainingError, match=r"not a sparktrainer\.resume\.v1 file"):
        ResumeState.load(other)
    junk = tmp_path / "junk.pt"
    junk.write_bytes(b"\x00not a torch file")
    with pytest.raises((TrainingError, UnsafeArtifactError)):
        ResumeState.load(junk)


def test_capture_rng_is_plain_values() -> None:
    rng = capture_rng()
    assert isinstance(rng["numpy"][1], list) and isinstance(rng["python"][1], list)
