"""The read model's concerns: the one list the schema, the fold and the projector read.

A new concern is a module beside ``jobs.py``, ``models.py``, ``names.py`` and ``retirement.py``
declaring its ``Concern`` (DDL, folds per event type, topics) and its queries, plus one entry
here. Order matters only where
two concerns fold the same event type: they fold it in this order, in one transaction.
"""

from __future__ import annotations

from sparktrainer.registry.concern import Concern
from sparktrainer.registry.job_details import JOB_DETAILS
from sparktrainer.registry.jobs import JOBS
from sparktrainer.registry.metric_series import METRIC_SERIES
from sparktrainer.registry.models import MODELS
from sparktrainer.registry.names import NAMES
from sparktrainer.registry.owners import OWNERS
from sparktrainer.registry.queue import QUEUE
from sparktrainer.registry.retirement import RETIREMENT
from sparktrainer.registry.sweeps import SWEEPS
from sparktrainer.registry.usage import USAGE

# NAMES and RETIREMENT fold model.registered after MODELS has written the model's row.
CONCERNS: tuple[Concern, ...] = (
    OWNERS,
    MODELS,
    JOBS,
    NAMES,
    RETIREMENT,
    METRIC_SERIES,
    JOB_DETAILS,
    QUEUE,
    SWEEPS,
    USAGE,
)

# Every topic some concern reads, in a stable order.
PROJECTED_TOPICS: tuple[str, ...] = tuple(dict.fromkeys(t for c in CONCERNS for t in c.topics))
