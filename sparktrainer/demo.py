"""``make demo``: the guide's Complete Workflow Example on the embedded stack.

Brings the stack up (validator, trainer and registry projector as separate processes),
then runs, as a user would type them: train from scratch, list, fine-tune, fine-tune the
fine-tuned model, and prints the models list with lineage. The stack is left running;
``sparktrainer down`` stops it.
"""

from __future__ import annotations

import json
import shlex
import subprocess
import sys
import uuid
from pathlib import Path
from typing import Any

from sparktrainer import guide
from sparktrainer.embedded import EmbeddedStack
from sparktrainer.settings import Settings

# The guide's workflow, with fewer epochs so the demo takes a minute on a laptop CPU.
WORKFLOW: tuple[tuple[str, dict[str, Any]], ...] = (
    ("Initial Model Training", {"epochs": 3}),
    ("Fine-tuning on New Task", {"epochs": 2}),
    ("Further Fine-tuning", {"epochs": 2}),
)


def sparktrainer(*args: str) -> None:
    """Run a ``sparktrainer`` command as a user would, echoing it first; stop on failure."""
    print(f"\n$ sparktrainer {shlex.join(args)}", flush=True)
    code = subprocess.call([sys.executable, "-m", "sparktrainer.cli.main", *args])
    if code != 0:
        raise SystemExit(f"demo step failed (exit {code}): sparktrainer {shlex.join(args)}")


def write_job(folder: Path, job: dict[str, Any], parent: str | None = None) -> Path:
    """Give the job a fresh id (so the demo can run again) and its parent; write it to a file."""
    job["job_id"] = f"{job['type']}-{uuid.uuid4().hex[:12]}"
    if parent is not None:
        job["config"]["model_id"] = parent
    path = folder / f"{job['job_id']}.json"
    path.write_text(json.dumps(job, indent=2))
    return path


def main() -> int:
    """Run the workflow end to end."""
    folder = Settings().home / "demo"
    folder.mkdir(parents=True, exist_ok=True)
    sparktrainer("up", "--detach")
    parent: str | None = None
    for name, fewer in WORKFLOW:
        path = write_job(folder, guide.with_config(guide.by_name(name), **fewer), parent)
        sparktrainer("submit", str(path), "--wait")
        if parent is None:
            sparktrainer("models", "list")
        parent = path.stem
    assert parent is not None
    sparktrainer("models", "lineage", parent)
    sparktrainer("models", "list")
    print("\nThe stack is still running: `.venv/bin/sparktrainer down` stops it.")
    stack = EmbeddedStack.load(Settings().home)
    if stack is not None and stack.dashboard_url:
        print(f"Dashboard: {stack.dashboard_url}  (jobs, curves, lineage, submit)")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
