"""Fencing on the real S3 server (issue 18 item 3): a stale attempt's writes are refused.

Attempt 1 of a job writes a checkpoint through its fenced store, as the training worker does;
the job moves (attempt 2 is recorded, its owner writes its own checkpoint); attempt 1 then
tries every kind of write an attempt makes: each is refused, and the server holds the owner's.
"""

from __future__ import annotations

import secrets
from pathlib import Path

import pytest

from sparktrainer.errors import FencedOff
from sparktrainer.storage.fencing import AttemptFence
from sparktrainer.storage.layout import checkpoint_prefix, model_key
from sparktrainer.storage.outcomes import (
    GAVE_WAY_KEPT,
    StoredOutcome,
    gave_way_times,
    hand_over,
    handovers,
    next_attempt,
    read_outcome,
    write_outcome,
)
from sparktrainer.storage.s3 import ObjectStore, sha256_file

pytestmark = pytest.mark.integration


def test_a_stale_attempts_writes_are_refused_by_the_real_store(
    store: ObjectStore, tmp_path: Path
) -> None:
    job = f"fenced-{secrets.token_hex(4)}"
    latest, previous = checkpoint_prefix(job) + "latest.pt", checkpoint_prefix(job) + "previous.pt"
    old_file, new_file = tmp_path / "old.pt", tmp_path / "new.pt"
    old_file.write_bytes(b"attempt 1 at step 40")
    new_file.write_bytes(b"attempt 2 at step 60")
    old = AttemptFence(store, job, next_attempt(store, job)).guarded()
    old.put_file(latest, old_file, sha256=sha256_file(old_file))  # while it owned the job
    new = AttemptFence(store, job, next_attempt(store, job)).guarded()  # the job moved
    new.copy(latest, previous)
    new.put_file(latest, new_file, sha256=sha256_file(new_file))
    for stale_write in (
        lambda: old.copy(latest, previous),  # what a checkpoint upload does first
        lambda: old.put_file(latest, old_file, sha256=sha256_file(old_file)),
        lambda: old.put_file(model_key(job, "metadata.json"), old_file),  # a second model
        lambda: write_outcome(old, job, StoredOutcome("completed", [])),  # an end
        lambda: old.delete_prefix(checkpoint_prefix(job)),  # the end's clean-up
    ):
        with pytest.raises(FencedOff, match="attempt 1 was superseded by attempt 2"):
            stale_write()
    assert store.recorded_sha256(latest) == sha256_file(new_file)
    assert store.get_bytes(latest) == new_file.read_bytes()
    assert store.get_bytes(previous) == old_file.read_bytes()  # the owner's own fallback
    assert not store.exists(model_key(job, "metadata.json"))
    assert read_outcome(store, job) is None


def test_the_times_a_job_gave_way_are_kept_in_its_attempt_record(store: ObjectStore) -> None:
    """The preemption bound's memory is the job's, in S3: any trainer reads what another wrote."""
    job = f"gave-way-{secrets.token_hex(4)}"
    assert gave_way_times(store, job) == []  # no record yet
    next_attempt(store, job)
    hand_over(store, job, 1, gave_way_ms=1_000)  # gave way to a higher priority
    next_attempt(store, job)
    hand_over(store, job, 2)  # a trainer's stop: handed over, but no preemption
    hand_over(store, job, 1, gave_way_ms=2_000)  # stale: changes nothing
    next_attempt(store, job)
    hand_over(store, job, 3, gave_way_ms=3_000)
    assert gave_way_times(store, job) == [1_000, 3_000] and handovers(store, job) == 3
    for n in range(4, 4 + GAVE_WAY_KEPT):
        next_attempt(store, job)
        hand_over(store, job, n, gave_way_ms=n * 1_000)
    kept = gave_way_times(store, job)
    assert len(kept) == GAVE_WAY_KEPT and kept[0] == 4_000  # bounded: the latest kept
    store.put_json(f"jobs/{job}/attempt.json", {"attempt": 9, "gave_way_ms": "soon"})
    assert gave_way_times(store, job) == []  # unreadable: nothing known, as for the count
