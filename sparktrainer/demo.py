"""``make demo``: the guide's Complete Workflow Example on the embedded stack, on real data.

Brings the stack up (validator, trainer and registry projector as separate processes),
then runs, as a user would type them: train from scratch, list, fine-tune, fine-tune the
fine-tuned model, and prints the models list with lineage. Every job trains on scikit-learn's
bundled 8x8 handwritten digits (1,797 images, 64 pixels each; the fine-tunes to 5 classes on
the digits 0-4), so the accuracy printed after each job is measured on held-out digits and
compared with chance. The stack is left running; ``sparktrainer down`` stops it.

    python -m sparktrainer.demo            # a few epochs a job (about a minute on a laptop)
    python -m sparktrainer.demo --quick    # one epoch a job (what CI runs)
"""

from __future__ import annotations

import argparse
import json
import shlex
import subprocess
import sys
import uuid
from typing import Any

from sparktrainer import guide
from sparktrainer.embedded import EmbeddedStack
from sparktrainer.settings import Settings

# The guide's workflow with its epochs; the demo's own changes are in DIGITS. The first model
# is registered under a name; the first fine-tune names its parent as that name's latest.
NAME = "guide-initial-model"
WORKFLOW: tuple[tuple[str, int], ...] = (
    ("Initial Model Training", 5),
    ("Fine-tuning on New Task", 3),
    ("Further Fine-tuning", 3),
)
# The bundled digits instead of synthetic data; they have 64 features (the guide's 784 are
# MNIST's 28x28), so the first job's input_size is 64 and its fine-tunes inherit it.
DIGITS: dict[str, Any] = {"data": {"source": "digits", "validation_split": 0.2}}


def sparktrainer(*args: str, capture: bool = False) -> str:
    """Run a ``sparktrainer`` command as a user would, echoing it first; stop on failure."""
    print(f"\n$ sparktrainer {shlex.join(args)}", flush=True)
    argv = [sys.executable, "-m", "sparktrainer.cli.main", *args]
    proc = subprocess.run(argv, stdout=subprocess.PIPE if capture else None, text=True)
    if proc.returncode != 0:
        raise SystemExit(
            f"demo step failed (exit {proc.returncode}): sparktrainer {shlex.join(args)}"
        )
    return proc.stdout or ""


def demo_job(name: str, epochs: int, parent: str | None) -> dict[str, Any]:
    """The guide's job on the digits, with a fresh id (so the demo can run again)."""
    job = guide.by_name(name)
    changes: dict[str, Any] = {**DIGITS, "epochs": epochs}
    if parent is None:
        changes["input_size"] = 64
    else:
        changes["model_id"] = parent
    job = guide.with_config(job, **changes)
    job["job_id"] = f"{job['type']}-{uuid.uuid4().hex[:12]}"
    return job


def accuracy_meaning(model: dict[str, Any]) -> str:
    """What a model's validation accuracy says, against guessing."""
    metrics = model.get("metrics") or {}
    classes = (model.get("architecture") or {}).get("num_classes")
    accuracy = metrics.get("val_accuracy")
    if not isinstance(accuracy, int | float) or not isinstance(classes, int) or classes < 1:
        return f"model {model.get('model_id')}: no validation accuracy recorded"
    chance = 1 / classes
    return (
        f"validation accuracy {accuracy:.1%} on held-out digits ({classes} classes): "
        f"guessing would score {chance:.0%}, so the model is right {accuracy / chance:.1f}x "
        "as often as chance"
    )


def main(argv: list[str] | None = None) -> int:
    """Run the workflow end to end."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="one epoch a job")
    args = parser.parse_args(argv)
    folder = Settings().home / "demo"
    folder.mkdir(parents=True, exist_ok=True)
    sparktrainer("up", "--detach")
    parent: str | None = None
    for name, epochs in WORKFLOW:
        job = demo_job(name, 1 if args.quick else epochs, parent)
        if parent is None:
            job["register_as"] = NAME
        path = folder / f"{job['job_id']}.json"
        path.write_text(json.dumps(job, indent=2))
        sparktrainer("submit", str(path), "--wait")
        model = json.loads(sparktrainer("models", "show", job["job_id"], "--json", capture=True))
        print(f"  -> {accuracy_meaning(model)}", flush=True)
        if parent is None:
            sparktrainer("models", "names", NAME)
        parent = f"{NAME}@latest" if parent is None else job["job_id"]
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
