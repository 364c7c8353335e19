"""The client's pure parts: what it takes as a job, and which exception each answer becomes.

The client against the real API is tests/integration/test_client.py.
"""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

from sparktrainer.client.api import MAX_JOB_FILE_BYTES, submission_body
from sparktrainer.client.errors import (
    ClientError,
    Conflict,
    NotFound,
    Refused,
    Unauthorized,
    Unreachable,
    error_for,
)
from sparktrainer.contracts.events import JobSubmitted

JOB = {"name": "n", "type": "train", "framework": "pytorch",
       "config": {"architecture": "custom", "input_size": 4, "output_size": 2}}  # fmt: skip


def test_a_job_is_a_dict_a_typed_job_or_a_json_file(tmp_path: Path) -> None:
    assert submission_body(JOB) is JOB
    typed = submission_body(JobSubmitted.model_validate(JOB))
    assert typed["config"] == JOB["config"] and "job_id" not in typed  # None fields left out
    path = tmp_path / "job.json"
    path.write_text(json.dumps(JOB))
    assert submission_body(path) == JOB == submission_body(str(path))
    path.write_text("[1, 2]")
    with pytest.raises(Refused, match="JSON object, not list"):
        submission_body(path)
    path.write_bytes(b" " * (MAX_JOB_FILE_BYTES + 1))
    with pytest.raises(Refused, match="not a job file"):
        submission_body(path)


@pytest.mark.parametrize(
    ("status", "kind"),
    [
        (400, Refused),
        (401, Unauthorized),
        (403, Unauthorized),
        (404, NotFound),
        (409, Conflict),
        (422, Refused),
        (500, ClientError),
    ],
)
def test_each_status_is_its_own_exception(status: int, kind: type[ClientError]) -> None:
    e = error_for(status, {"detail": "why", "errors": ["config.x: bad"]})
    assert type(e) is kind and e.status == status and e.errors == ["config.x: bad"]
    assert str(e) == f"API answered {status}: why"
    assert error_for(status, "<html>proxy</html>").errors == []
    assert not e.retriable and Unreachable("down").retriable


def test_importing_sparktrainer_does_not_load_the_client() -> None:
    probe = ("import sys, sparktrainer, sparktrainer.client; "
             "print('httpx' in sys.modules, sparktrainer.Client.__module__)")  # fmt: skip
    done = subprocess.run([sys.executable, "-c", probe], capture_output=True, text=True, check=True)
    assert done.stdout.split() == ["False", "sparktrainer.client.api"]
