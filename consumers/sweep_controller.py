"""The sweep controller: runs sweeps (type "sweep") as trials on the bus, and stops losing ones.

    python -m consumers.sweep_controller

One replica: it keeps no state of its own and rebuilds it from the log at start
(``sparktrainer.sweeps.controller.SweepController``).
"""

from __future__ import annotations

import argparse

from consumers._entry import serve
from sparktrainer.settings import Settings
from sparktrainer.sweeps.controller import SweepController


def _build(settings: Settings, args: argparse.Namespace) -> SweepController:
    return SweepController(settings)


def main(argv: list[str] | None = None) -> int:
    """Console entry point: run the sweep controller until SIGTERM/SIGINT."""
    parser = argparse.ArgumentParser(prog="sweep_controller", description=__doc__)
    return serve("sweep_controller", _build, parser, argv)


if __name__ == "__main__":
    raise SystemExit(main())
