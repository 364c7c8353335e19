"""Integration support for training: a warm worker on the real embedded S3 (``stack``)."""

from __future__ import annotations

from collections.abc import Callable

import pytest

from sparktrainer.contracts.events import JobValidated
from tests.integration.training.workerkit import recorder, worker  # noqa: F401  (fixtures)
from tests.unit.training import jobkit


@pytest.fixture(scope="session")
def make_job() -> Callable[..., JobValidated]:
    """A validated job with its config normalized the way the validator does."""
    return jobkit.make_job
