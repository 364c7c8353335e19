"""Log lines go to the stderr of the moment, not the one ``configure`` saw (since closed)."""

from __future__ import annotations

import io

import pytest
import structlog

from sparktrainer.logging import configure


def test_a_log_line_after_stderr_was_swapped_and_closed(monkeypatch: pytest.MonkeyPatch) -> None:
    first, second = io.StringIO(), io.StringIO()
    monkeypatch.setattr("sys.stderr", first)
    configure("WARNING", json_logs=True)
    first.close()  # what pytest's capture does at a test's end
    monkeypatch.setattr("sys.stderr", second)
    structlog.get_logger("t").warning("stack_process_killed", processes=["seaweedfs"])
    assert '"event": "stack_process_killed"' in second.getvalue()
