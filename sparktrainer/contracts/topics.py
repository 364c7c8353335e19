"""Topic names: the public surface other systems wire to."""

from __future__ import annotations

JOBS_SUBMITTED = "sparktrainer.jobs.submitted"
JOBS_VALIDATED = "sparktrainer.jobs.validated"
JOBS_REJECTED = "sparktrainer.jobs.rejected"
JOBS_LIFECYCLE = "sparktrainer.jobs.lifecycle"
JOBS_CONTROL = "sparktrainer.jobs.control"
MODELS_REGISTERED = "sparktrainer.models.registered"

ALL_TOPICS: tuple[str, ...] = (
    JOBS_SUBMITTED,
    JOBS_VALIDATED,
    JOBS_REJECTED,
    JOBS_LIFECYCLE,
    JOBS_CONTROL,
    MODELS_REGISTERED,
)

DESCRIPTIONS: dict[str, str] = {
    JOBS_SUBMITTED: "The public door: job submissions from any producer (bare JSON accepted).",
    JOBS_VALIDATED: "Jobs that passed validation, with their normalized config.",
    JOBS_REJECTED: "Submissions that failed validation, with every error at once.",
    JOBS_LIFECYCLE: "Started, progress, checkpoint-saved, completed, failed, cancelled.",
    JOBS_CONTROL: "Control requests for running jobs (cancel).",
    MODELS_REGISTERED: "A model whose files are all uploaded; key = model id.",
}
