"""Read an attempt's log the two ways a user can: ``sparktrainer jobs logs`` and the API."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import httpx

from sparktrainer.api.app import create_app
from sparktrainer.cli.main import main as cli
from sparktrainer.settings import Settings


async def log_through_cli_and_api(
    settings: Settings, job_id: str, attempt: int, capsysbinary: Any, tmp_path: Path
) -> bytes:
    """Attempt ``attempt``'s log as the CLI prints it, checked equal to GET /api/jobs/{id}/logs.

    ``settings`` must be exported to the environment (the ``settings`` fixture does it), so
    the CLI reaches the same S3.
    """
    capsysbinary.readouterr()
    assert cli(["jobs", "logs", job_id, "--attempt", str(attempt)]) == 0
    printed = capsysbinary.readouterr().out
    app = create_app(settings, db_path=tmp_path / f"logs-{job_id}.sqlite3")
    async with app.router.lifespan_context(app):
        transport = httpx.ASGITransport(app=app)
        async with httpx.AsyncClient(transport=transport, base_url="http://localhost") as api:
            got = await api.get(f"/api/jobs/{job_id}/logs", params={"attempt": attempt})
    assert got.status_code == 200, got.text
    assert got.headers["x-attempt"] == str(attempt) and got.content == printed
    assert printed, f"attempt {attempt} of {job_id} logged nothing"
    return printed
