"""Topic names: the public surface other systems wire to."""

from __future__ import annotations

from sparktrainer.contracts.scheduling import (
    BY_NAME,
    CLASSES,
    DEFAULT_CLASS,
    DEFAULT_PRIORITY,
    PRIORITIES,
)

JOBS_SUBMITTED = "sparktrainer.jobs.submitted"
JOBS_VALIDATED = "sparktrainer.jobs.validated"  # the (cpu, normal) route: every old job's topic
JOBS_REJECTED = "sparktrainer.jobs.rejected"
JOBS_LIFECYCLE = "sparktrainer.jobs.lifecycle"
JOBS_CONTROL = "sparktrainer.jobs.control"
MODELS_REGISTERED = "sparktrainer.models.registered"
MODELS_CHANGES = "sparktrainer.models.changes"
SWEEPS = "sparktrainer.sweeps"
TRAINERS = "sparktrainer.trainers"


def validated_topic(resource_class: str, priority: str) -> str:
    """The topic of validated jobs of one resource class and priority (contracts/scheduling.py)."""
    if (resource_class, priority) == (DEFAULT_CLASS, DEFAULT_PRIORITY):
        return JOBS_VALIDATED
    return f"{JOBS_VALIDATED}.{resource_class}.{priority}"


# topic -> (resource class, priority), highest priority first within each class
ROUTES: dict[str, tuple[str, str]] = {
    validated_topic(c.name, p): (c.name, p) for c in CLASSES for p in reversed(PRIORITIES)
}
VALIDATED_TOPICS: tuple[str, ...] = tuple(ROUTES)


def class_topics(*classes: str) -> tuple[str, ...]:
    """Every priority topic of these resource classes (what a trainer serving them reads)."""
    return tuple(t for t, (c, _) in ROUTES.items() if c in classes)


ALL_TOPICS: tuple[str, ...] = (
    JOBS_SUBMITTED,
    JOBS_VALIDATED,
    JOBS_REJECTED,
    JOBS_LIFECYCLE,
    JOBS_CONTROL,
    MODELS_REGISTERED,
    MODELS_CHANGES,
    *(t for t in VALIDATED_TOPICS if t != JOBS_VALIDATED),
    SWEEPS,
    TRAINERS,
)

DESCRIPTIONS: dict[str, str] = {
    JOBS_SUBMITTED: "The public door: job submissions from any producer (bare JSON accepted).",
    JOBS_REJECTED: "Submissions that failed validation, with every error at once.",
    JOBS_LIFECYCLE: "Started, progress, checkpoint-saved, completed, failed, cancelled.",
    JOBS_CONTROL: "Control requests for running jobs and sweeps (cancel).",
    MODELS_REGISTERED: "A model whose files are all uploaded; key = its registered name, if it "
    "has one (every version of a name in one partition), else the model id.",
    MODELS_CHANGES: "Registry changes: alias set/removed (key = model name), archived, deleted, "
    "purged (key = model id).",
    SWEEPS: "Validated sweeps and the sweep controller's decisions (trials planned, stopped).",
    TRAINERS: "Trainer heartbeats: the classes each trainer serves and the job it runs.",
    **{
        t: f"Validated jobs of resource class '{c}' ({BY_NAME[c].description}), priority {p}, "
        "with their normalized config."
        for t, (c, p) in ROUTES.items()
    },
}

# Who may write and read each topic, by role: the Kafka ACLs infra/ should grant (not enforced
# there yet; the scheduling topics, sweeps and trainers, are not in it yet either). Only the
# validator writes the verdicts; only trainers write the lifecycle and registrations.
# Roles: api, operator (the CLI, replay onto the door), ui (Kafka UI), and the consumers.
WRITERS: dict[str, tuple[str, ...]] = {
    JOBS_SUBMITTED: ("api", "operator", "ui"),
    JOBS_VALIDATED: ("validator",),
    JOBS_REJECTED: ("validator",),
    JOBS_LIFECYCLE: ("trainer",),
    JOBS_CONTROL: ("api", "operator", "ui"),
    MODELS_REGISTERED: ("trainer",),
}
READERS: dict[str, tuple[str, ...]] = {
    JOBS_SUBMITTED: ("validator", "projector", "api", "operator", "ui"),
    JOBS_VALIDATED: ("trainer", "projector", "api", "operator", "ui"),
    JOBS_REJECTED: ("projector", "api", "operator", "ui"),
    JOBS_LIFECYCLE: ("projector", "api", "operator", "ui"),
    JOBS_CONTROL: ("trainer", "operator", "ui"),
    MODELS_REGISTERED: ("projector", "api", "operator", "ui"),
}
# Consumer groups by role (a prefix: the trainer's cancel responder is ``<group>-control``).
GROUP_PREFIXES: dict[str, str] = {
    "validator": "sparktrainer-validator",
    "trainer": "sparktrainer-trainer",
}
