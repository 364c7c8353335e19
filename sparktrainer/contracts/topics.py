"""Topic names: the public surface other systems wire to."""

from __future__ import annotations

from sparktrainer.contracts.scheduling import (
    BY_NAME,
    CLASSES,
    DEFAULT_CLASS,
    DEFAULT_PRIORITY,
    PRIORITIES,
)
from sparktrainer.contracts.tenants import DEFAULT_TENANT

JOBS_SUBMITTED = "sparktrainer.jobs.submitted"
JOBS_VALIDATED = "sparktrainer.jobs.validated"  # the (cpu, normal) route: every old job's topic
JOBS_REJECTED = "sparktrainer.jobs.rejected"
JOBS_LIFECYCLE = "sparktrainer.jobs.lifecycle"
JOBS_CONTROL = "sparktrainer.jobs.control"
MODELS_REGISTERED = "sparktrainer.models.registered"
MODELS_CHANGES = "sparktrainer.models.changes"
SWEEPS = "sparktrainer.sweeps"
TRAINERS = "sparktrainer.trainers"
# The sweep controller's own path to the validator: its trials (TrialSubmission), never a door.
# Only the sweep-controller role writes it, so a trial's sweep_id, trial and tenant are the
# controller's word, where on a door they would be anyone's claim.
SWEEP_TRIALS = "sparktrainer.sweeps.trials"
# One submission door per tenant (contracts/tenants.py): prefixed ACLs give the topics under
# ``sparktrainer.tenants.{name}.`` only to that tenant's Kafka users, so the topic a record was
# read from establishes its tenant; the plain door is the default tenant's.
TENANT_TOPIC_PREFIX = "sparktrainer.tenants."
_TENANT_SUBMITTED_SUFFIX = ".jobs.submitted"


def validated_topic(resource_class: str, priority: str) -> str:
    """The topic of validated jobs of one resource class and priority (contracts/scheduling.py)."""
    if (resource_class, priority) == (DEFAULT_CLASS, DEFAULT_PRIORITY):
        return JOBS_VALIDATED
    return f"{JOBS_VALIDATED}.{resource_class}.{priority}"


def submission_topic(tenant: str) -> str:
    """The topic a tenant submits jobs and sweeps on (the plain door: the default tenant's)."""
    if tenant == DEFAULT_TENANT:
        return JOBS_SUBMITTED
    return f"{TENANT_TOPIC_PREFIX}{tenant}{_TENANT_SUBMITTED_SUFFIX}"


def tenant_prefix(tenant: str) -> str:
    """The topic prefix whose prefixed ACLs are one tenant's (its Kafka users write under it)."""
    return f"{TENANT_TOPIC_PREFIX}{tenant}."


def door_topics(tenants: tuple[str, ...]) -> tuple[str, ...]:
    """Every submission door of these tenants, the plain one first (what the validator reads)."""
    return tuple(dict.fromkeys((JOBS_SUBMITTED, *(submission_topic(n) for n in tenants))))


def submission_tenant(topic: str) -> str | None:
    """The tenant whose submission door ``topic`` is ("default" for the plain one), else None."""
    if topic == JOBS_SUBMITTED:
        return DEFAULT_TENANT
    if topic.startswith(TENANT_TOPIC_PREFIX) and topic.endswith(_TENANT_SUBMITTED_SUFFIX):
        name = topic[len(TENANT_TOPIC_PREFIX) : -len(_TENANT_SUBMITTED_SUFFIX)]
        return name if name and "." not in name else None
    return None


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
    SWEEP_TRIALS,
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
    SWEEP_TRIALS: "The sweep controller's trials for the validator (key = trial job id): the "
    "only way in for a job with sweep_id and trial.",
    TRAINERS: "Trainer heartbeats: the classes each trainer serves and the job it runs.",
    **{
        t: f"Validated jobs of resource class '{c}' ({BY_NAME[c].description}), priority {p}, "
        "with their normalized config."
        for t, (c, p) in ROUTES.items()
    },
}

# Who may write and read each topic, by role: the Kafka ACLs infra/ grants, generated from this
# table (infra/acls.py renders infra/k8s/kafka-users.yaml and infra/kafka-acls.sh; infra/check.py
# and tests/unit/test_infra_acls.py fail when they disagree with it). Only the validator writes
# the verdicts (validated, rejected, validated sweeps); only trainers write the lifecycle and
# registrations, and the sweep controller for its own sweep jobs (a sweep is a job: its start,
# end and best model; Kafka ACLs are per topic, not per key). Roles: validator (also reads the
# registry topics for its registry view), trainer (every pool; its janitor reads and purges on
# models.changes, its heartbeat writes trainers), projector, api (with its in-process projector),
# sweep-controller, operator (people: the CLI, replay), ui (Kafka UI).
EVERY_READER = ("projector", "api", "operator", "ui")
WRITERS: dict[str, tuple[str, ...]] = {
    JOBS_SUBMITTED: ("api", "operator", "ui"),
    **{t: ("validator",) for t in VALIDATED_TOPICS},
    JOBS_REJECTED: ("validator",),
    JOBS_LIFECYCLE: ("trainer", "sweep-controller"),
    JOBS_CONTROL: ("api", "operator", "ui", "sweep-controller"),
    MODELS_REGISTERED: ("trainer", "sweep-controller"),
    MODELS_CHANGES: ("api", "operator", "trainer"),
    SWEEPS: ("validator", "sweep-controller"),
    SWEEP_TRIALS: ("sweep-controller",),
    TRAINERS: ("trainer",),
}
READERS: dict[str, tuple[str, ...]] = {
    JOBS_SUBMITTED: ("validator", *EVERY_READER),
    **{t: ("trainer", *EVERY_READER) for t in VALIDATED_TOPICS},
    JOBS_REJECTED: ("sweep-controller", *EVERY_READER),
    JOBS_LIFECYCLE: ("sweep-controller", *EVERY_READER),
    JOBS_CONTROL: ("trainer", "sweep-controller", *EVERY_READER),
    MODELS_REGISTERED: ("validator", "sweep-controller", *EVERY_READER),
    MODELS_CHANGES: ("validator", "trainer", *EVERY_READER),
    SWEEPS: ("sweep-controller", *EVERY_READER),
    SWEEP_TRIALS: ("validator", *EVERY_READER),
    TRAINERS: (*EVERY_READER, "trainer"),  # each trainer folds who runs what (fair share)
}
# The tenants' doors, one prefix per tenant (``tenant_prefix``), are not in the tables above:
# which tenants exist is configuration (the tenants file). Each tenant's own Kafka users
# (``kafka_users``) may write only under their tenant's prefix; these roles get the whole
# ``TENANT_TOPIC_PREFIX``: the api (it writes the door of the tenant a token establishes) and
# the operator (people who run the company's runner may submit for any team), while the
# validator and every reader read all of them. infra/acls.py renders both.
TENANT_DOOR_WRITERS: tuple[str, ...] = ("api", "operator")
TENANT_DOOR_READERS: tuple[str, ...] = ("validator", *EVERY_READER)
# Consumer groups by role (a prefix: the trainer's cancel responder is ``<group>-control``).
# The others assign partitions by hand and use no group.
GROUP_PREFIXES: dict[str, str] = {
    "validator": "sparktrainer-validator",
    "trainer": "sparktrainer-trainer",
}
# Roles that only look at offsets and lag (KEDA's triggers): Describe on these groups' topics.
LAG_WATCHERS: tuple[str, ...] = ("keda",)
