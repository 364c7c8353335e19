"""The CLI imports only the module of the command it runs: its index must stay true."""

from __future__ import annotations

import argparse
import importlib
import subprocess
import sys

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


def test_submit_does_not_import_the_api_replay_or_training() -> None:
    probe = (
        "import sys; from sparktrainer.cli.main import build_parser, COMMANDS; "
        "build_parser((COMMANDS['submit'],)); "
        "print(' '.join(m for m in ('fastapi', 'torch', 'sparktrainer.replay', "
        "'sparktrainer.embedded.stack', 'sparktrainer.client.follow') if m in sys.modules))"
    )
    loaded = subprocess.run(
        [sys.executable, "-c", probe], capture_output=True, text=True, check=True
    ).stdout.split()
    assert loaded == []
