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

from sparktrainer.settings import Settings

# The guide's workflow jobs, with fewer epochs so the demo takes a minute on a laptop CPU.
TRAIN: dict[str, Any] = {
    "name": "Initial Model Training",
    "type": "train",
    "framework": "pytorch",
    "config": {
        "architecture": "custom",
        "input_size": 784,
        "output_size": 10,
        "hidden_layers": [512, 256, 128],
        "epochs": 3,
        "batch_size": 64,
        "learning_rate": 0.001,
    },
}
FINETUNE: dict[str, Any] = {
    "name": "Fine-tuning on New Task",
    "type": "finetune",
    "framework": "pytorch",
    "config": {
        "model_source": "model_id",
        "model_id": "",
        "num_classes": 5,
        "epochs": 2,
        "batch_size": 32,
        "learning_rate": 0.0001,
        "freeze_layers": False,
    },
}
FURTHER: dict[str, Any] = {
    "name": "Further Fine-tuning",
    "type": "finetune",
    "framework": "pytorch",
    "config": {
        "model_source": "model_id",
        "model_id": "",
        "num_classes": 5,
        "epochs": 2,
        "learning_rate": 0.00005,
    },
}


def sparktrainer(*args: str) -> None:
    """Run a ``sparktrainer`` command as a user would, echoing it first; stop on failure."""
    print(f"\n$ sparktrainer {shlex.join(args)}", flush=True)
    code = subprocess.call([sys.executable, "-m", "sparktrainer.cli.main", *args])
    if code != 0:
        raise SystemExit(f"demo step failed (exit {code}): sparktrainer {shlex.join(args)}")


def write_job(folder: Path, job: dict[str, Any], parent: str | None = None) -> Path:
    """Give the job a fresh id (so the demo can run again) and write it to a file."""
    job = json.loads(json.dumps(job))
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
    for job in (TRAIN, FINETUNE, FURTHER):
        path = write_job(folder, job, parent)
        sparktrainer("submit", str(path), "--wait")
        parent = path.stem
        if job is TRAIN:
            sparktrainer("models", "list")
    assert parent is not None
    sparktrainer("models", "lineage", parent)
    sparktrainer("models", "list")
    print("\nThe stack is still running: `.venv/bin/sparktrainer down` stops it.")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
