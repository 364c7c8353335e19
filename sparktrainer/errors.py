"""A small error hierarchy: every failure says whether retrying can help."""

from __future__ import annotations


class SparkTrainerError(Exception):
    """Base of every error SparkTrainer raises on purpose."""

    retriable: bool = False


class ConfigurationError(SparkTrainerError):
    """The process is misconfigured (settings, missing extras); fix the setting."""


class InvalidJobError(SparkTrainerError):
    """A job spec is wrong; the message says what and how to fix it."""

    def __init__(self, errors: list[str]) -> None:
        super().__init__("; ".join(errors))
        self.errors = errors


class StorageError(SparkTrainerError):
    """The object store failed; retriable unless the object is missing or refused."""

    retriable = True


class ObjectNotFound(StorageError):
    """An object the caller needs is not in the store."""

    retriable = False


class UnsafeArtifactError(SparkTrainerError):
    """A stored file is not what it claims (e.g. a pickle where tensors were expected)."""


class TrainingError(SparkTrainerError):
    """Training failed for a reason inside the job (bad data, NaN loss, OOM)."""


class JobCancelledError(SparkTrainerError):
    """The job was cancelled by a cancel-requested event."""


class JobTimeout(TrainingError):
    """The job ran past its time limit."""


class JobPreemptedError(SparkTrainerError):
    """The trainer is going away (SIGTERM, a termination notice): the job stops to resume
    elsewhere. ``step`` is the optimizer step of the checkpoint taken at the stop (None: none
    was taken, the next owner resumes from the last periodic one)."""

    retriable = True

    def __init__(self, message: str, step: int | None = None) -> None:
        super().__init__(message)
        self.step = step


class HandedBack(SparkTrainerError):
    """A handler gives its record back undone: it is not committed, so the partition's next
    owner runs it again (a job preempted on a trainer that is stopping)."""

    retriable = True


class Requeued(HandedBack):
    """A handler gives its record back to start later on the same consumer (a job preempted
    for a higher priority one): it waits again among the fetched records, its age kept."""


class FencedOff(HandedBack):
    """This trainer's attempt of a job is no longer the job's current one (``attempt.json``
    names a later start: the job moved while this trainer was cut off). Nothing more of the
    attempt is written or announced; the record is handed back undone and the trainer stands
    down."""


class DataError(TrainingError):
    """The job's data set is missing, unreadable or malformed; fix the data."""


class ModelUnavailableError(TrainingError):
    """A model the job starts from (hub, registered, pretrained weights) cannot be loaded."""
