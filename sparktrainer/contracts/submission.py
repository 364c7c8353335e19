"""The public door's event: a job request as submitted (``JobSubmitted``).

A module of its own so that what only submits (``sparktrainer submit``, the envelope's encoder)
loads the request's model and not every job event; ``events.py`` holds the rest and names this
one among them.
"""

from __future__ import annotations

from typing import ClassVar

from sparktrainer.contracts import topics
from sparktrainer.contracts.jobspec import JobRequest


class JobSubmitted(JobRequest):
    """io.sparktrainer.job.submitted.v1: a job request on the public door."""

    ce_type: ClassVar[str] = "io.sparktrainer.job.submitted.v1"
    topic: ClassVar[str] = topics.JOBS_SUBMITTED
