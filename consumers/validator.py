"""The validator: answers every record on the submission doors (the plain one, each tenant's)
and the sweep controller's trials with validated or rejected.

python -m consumers.validator [--group-id G]

The wiring lives in ``sparktrainer.services.validator`` (runtime + registry directory).
"""

from __future__ import annotations

import argparse

from consumers._entry import serve
from sparktrainer.services.validator import GROUP, ValidatorService, build_runtime

__all__ = ["build_runtime", "main"]


def main(argv: list[str] | None = None) -> int:
    """Console entry point: run the validator until SIGTERM/SIGINT."""
    parser = argparse.ArgumentParser(prog="validator", description=__doc__)
    parser.add_argument("--group-id", default=GROUP, help=f"consumer group (default {GROUP})")
    return serve("validator", ValidatorService, parser, argv)


if __name__ == "__main__":
    raise SystemExit(main())
