"""What the client raises: one class per thing a caller handles differently."""

from __future__ import annotations

from typing import TYPE_CHECKING

from sparktrainer.errors import SparkTrainerError

if TYPE_CHECKING:
    from sparktrainer.client.types import JobState


class ClientError(SparkTrainerError):
    """An answer the client cannot use: the API's status and message, and its error list."""

    def __init__(self, message: str, status: int | None = None, errors: list[str] | None = None):
        super().__init__(message)
        self.status = status
        self.errors = errors or []


class Unreachable(ClientError):
    """No answer from the API (down, wrong address): retrying later can help."""

    retriable = True


class Unauthorized(ClientError):
    """401 or 403: the token is missing or wrong (``SPARKTRAINER_API_TOKEN``)."""


class NotFound(ClientError):
    """404: no such job or model (or the read model has not folded it yet)."""


class Conflict(ClientError):
    """409: the request contradicts the state (a job that has ended, an ambiguous id prefix)."""


class Refused(ClientError):
    """400 or 422: the body is not a job or a parameter is wrong; ``errors`` says each fault."""


class JobNotCompleted(ClientError):
    """``wait`` saw the job end failed, cancelled or rejected; ``job`` is how it ended."""

    def __init__(self, job: JobState) -> None:
        reason = job.reason or "; ".join(job.errors) or "no reason given"
        super().__init__(f"job '{job.job_id}' ended {job.status}: {reason}")
        self.job = job


_BY_STATUS: dict[int, type[ClientError]] = {
    400: Refused,
    401: Unauthorized,
    403: Unauthorized,
    404: NotFound,
    409: Conflict,
    422: Refused,
}


def error_for(status: int, answer: object) -> ClientError:
    """The exception for an API error answer (``{"detail", "errors"}``, or any text)."""
    detail, errors = str(answer)[:300], []
    if isinstance(answer, dict):
        detail = str(answer.get("detail", detail))[:300]
        errors = [str(e) for e in answer.get("errors") or [] if e is not None]
    return _BY_STATUS.get(status, ClientError)(f"API answered {status}: {detail}", status, errors)
