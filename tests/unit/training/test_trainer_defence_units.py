"""The worker's budget, verified checkpoints and the Hugging Face estimate where the job runs."""

from __future__ import annotations

import subprocess
import sys
import time
from pathlib import Path

import pytest

from sparktrainer.contracts.events import CheckpointSaved
from sparktrainer.errors import JobCancelledError, UnsafeArtifactError
from sparktrainer.settings import Settings
from sparktrainer.training.recipes import run_recipe_job
from sparktrainer.training.worker.budget import MemoryWatch, budget_note
from sparktrainer.training.worker.protocol import failure_fields

DIGITS_MLP = {"input_size": 64, "output_size": 10, "hidden_layers": [32], "epochs": 2,
              "data": {"source": "digits"}}  # fmt: skip


def test_the_watch_sees_a_process_tree_past_its_budget_and_kills_all_of_it() -> None:
    """A parent holding 100 MB, its child 150 MB: each under 200 MB, over it together."""
    hold = "import time; b = bytearray({n}); b[::4096] = b'x' * len(b[::4096]); time.sleep(60)"
    code = (
        "import subprocess, sys, time; "
        f"child = subprocess.Popen([sys.executable, '-c', {hold.format(n=150 * 2**20)!r}]); "
        + hold.format(n=100 * 2**20)
    )
    parent = subprocess.Popen([sys.executable, "-c", code])
    watch = MemoryWatch(200 * 2**20)
    try:
        deadline = time.monotonic() + 30
        while (used := watch.over(parent.pid)) is None:
            assert time.monotonic() < deadline, watch.rss(parent.pid)
            time.sleep(0.1)
        assert used > 200 * 2**20 and len(watch.tree(parent.pid)) == 2  # counted together
        children = watch.tree(parent.pid)[1:]
        watch.kill(parent.pid)
        assert parent.wait(10) != 0
        for child in children:
            child.wait(10)
        assert watch.tree(parent.pid) == []
    finally:
        parent.kill()


def test_a_failed_allocation_names_the_budget_and_is_not_retried() -> None:
    note = budget_note(Settings(worker_memory_budget_bytes=3 * 2**30))
    fields = failure_fields(MemoryError("Unable to allocate 9.3 GiB"), note)
    assert fields["error_type"] == "MemoryBudgetExceeded" and not fields["retriable"]
    assert (
        "worker memory budget of 3.0 GiB (SPARKTRAINER_WORKER_MEMORY_BUDGET_BYTES)"
        in (fields["reason"])
    )
    torch_cpu = RuntimeError("[enforce fail] DefaultCPUAllocator: can't allocate memory: 9 GB")
    assert failure_fields(torch_cpu, note)["error_type"] == "MemoryBudgetExceeded"


def test_a_checkpoint_whose_bytes_are_not_the_recorded_ones_is_refused(
    make_ctx, s3, job_id, tmp_path: Path
) -> None:
    first = make_ctx(job_id("tampered-ckpt"), "pytorch.mlp", DIGITS_MLP)
    emit = first.emit

    def stop_after_checkpoint(event: object) -> None:
        emit(event)
        if isinstance(event, CheckpointSaved):
            first.stop.set("cancel", "stop after the first checkpoint")

    first.emit = stop_after_checkpoint
    with pytest.raises(JobCancelledError):
        run_recipe_job(first)
    saved = [e for e in first.events if isinstance(e, CheckpointSaved)]
    assert saved and saved[-1].sha256 == s3.recorded_sha256(saved[-1].key)
    local = tmp_path / "latest.pt"
    s3.get_file(saved[-1].key, local)
    local.write_bytes(local.read_bytes() + b"\0")  # one byte more: still loads as torch
    s3.put_file(saved[-1].key, local, sha256=saved[-1].sha256)  # the old hash, new bytes
    # With no good checkpoint left to fall back to (test_stop_checkpoints.py shows the
    # fallback), the resume is refused.
    s3.delete(saved[-1].key.replace("latest.pt", "previous.pt"))
    second = make_ctx(job_id("tampered-ckpt"), "pytorch.mlp", DIGITS_MLP, attempt=2)
    with pytest.raises(UnsafeArtifactError, match=r"is not the .* recorded when it was uploaded"):
        run_recipe_job(second)
    s3.put_file(saved[-1].key, local)  # and with no hash recorded at all
    third = make_ctx(job_id("tampered-ckpt"), "pytorch.mlp", DIGITS_MLP, attempt=3)
    with pytest.raises(UnsafeArtifactError, match="no sha256 was recorded"):
        run_recipe_job(third)
