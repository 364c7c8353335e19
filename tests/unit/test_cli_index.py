"""The CLI imports only the module of the command it runs: its index must stay true."""

from __future__ import annotations

import argparse
import importlib
import json
import os
import subprocess
import sys
from pathlib import Path

from sparktrainer.cli.main import COMMAND_MODULES, COMMANDS


def registered_by(module: str) -> set[str]:
    parser = argparse.ArgumentParser()
    subparsers = parser.add_subparsers()
    importlib.import_module(module).register(subparsers)
    return set(subparsers.choices)


def test_every_indexed_command_is_registered_by_its_module() -> None:
    for module in COMMAND_MODULES:
        indexed = {name for name, owner in COMMANDS.items() if owner == module}
        assert indexed == registered_by(module), module


def test_submit_loads_only_what_sending_its_record_needs(tmp_path: Path) -> None:
    """Up to the send: no API, training, replay, follower, read model, S3 client, embedded
    stack, other commands' modules, nor the event classes a submit does not send."""
    job = tmp_path / "job.json"
    job.write_text(json.dumps({"type": "train", "framework": "pytorch", "config": {}}))
    probe = (
        "import sys, sparktrainer.cli.submit as s\n"
        "async def publish(settings, record):\n"
        "    print(record.topic, ' '.join(m for m in sys.argv[2:] if m in sys.modules))\n"
        "s.publish = publish\n"
        "from sparktrainer.cli.main import main\n"
        "main(['submit', sys.argv[1], '--json'])\n"
    )
    unwanted = (
        "fastapi",
        "torch",
        "minio",
        "sparktrainer.replay",
        "sparktrainer.embedded",
        "sparktrainer.client.follow",
        "sparktrainer.registry.store",
        "sparktrainer.registry.metric_series",
        "sparktrainer.storage.s3",
        "sparktrainer.cli.jobs",
        "sparktrainer.cli.stack",
        "sparktrainer.contracts.catalog",
    )
    env = {k: v for k, v in os.environ.items() if not k.startswith("SPARKTRAINER_")}
    env |= {
        "SPARKTRAINER_KAFKA_BOOTSTRAP_SERVERS": "127.0.0.1:1",
        "SPARKTRAINER_S3_ENDPOINT": "http://127.0.0.1:2",
        "SPARKTRAINER_HOME": str(tmp_path),
    }
    result = subprocess.run([sys.executable, "-c", probe, str(job), *unwanted], env=env,
                            capture_output=True, text=True, check=True)  # fmt: skip
    assert result.stdout.splitlines()[0].split() == ["sparktrainer.jobs.submitted"]
