"""Which resource classes a trainer serves: from its settings, or from the devices it has."""

from __future__ import annotations

from sparktrainer.contracts.events import JobFailed, JobValidated
from sparktrainer.contracts.failures import FailureReason
from sparktrainer.contracts.scheduling import BY_NAME, CLASS_NAMES, classes_for_devices
from sparktrainer.errors import ConfigurationError
from sparktrainer.settings import Settings


def served_classes(settings: Settings, gpu_memory_bytes: list[int]) -> tuple[str, ...]:
    """``SPARKTRAINER_TRAINER_CLASSES`` when set, else what the GPUs give (and cpu)."""
    if not settings.trainer_classes:
        return classes_for_devices(gpu_memory_bytes, settings.trainer_takes_cpu_jobs)
    names = (n.strip() for n in settings.trainer_classes.split(","))
    named = tuple(dict.fromkeys(n for n in names if n))
    unknown = [n for n in named if n not in BY_NAME]
    if unknown or not named:
        raise ConfigurationError(
            f"SPARKTRAINER_TRAINER_CLASSES={settings.trainer_classes[:200]!r} names "
            f"{', '.join(unknown) or 'no class'}: use a comma list of {', '.join(CLASS_NAMES)}"
        )
    return named


def unserved(job: JobValidated, topic: str, classes: tuple[str, ...]) -> JobFailed | None:
    """The answer to a job of a class this trainer does not serve (written to a wrong topic)."""
    if job.resource_class in classes:
        return None
    return JobFailed(
        job_id=job.job_id,
        reason=(
            f"job needs resource class '{job.resource_class}' (topic {job.home_topic()}) but "
            f"was written to {topic[:200]}, read by trainers serving {', '.join(classes)}: "
            "submit jobs through sparktrainer.jobs.submitted"
        )[:500],
        error_type="Misrouted",
        retriable=False,
        cause=FailureReason.CONFIG,
    )
