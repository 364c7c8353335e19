"""Training tests run their jobs on the session's real S3 server (see ``jobkit``)."""

from tests.unit.training.jobkit import job_id, make_ctx, s3, stored  # noqa: F401  (fixtures)
