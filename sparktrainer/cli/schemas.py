"""``sparktrainer schemas``: write the JSON Schemas and AsyncAPI document to schemas/."""

from __future__ import annotations

import argparse
from pathlib import Path
from typing import Any


def register(subparsers: Any) -> None:
    """Add the ``schemas`` command."""
    p = subparsers.add_parser("schemas", help="write event JSON Schemas + AsyncAPI document")
    p.add_argument("--out", type=Path, default=Path("schemas"), help="folder (default schemas/)")
    p.set_defaults(func=cmd_schemas)


def cmd_schemas(args: argparse.Namespace) -> int:
    """Write the files and list them."""
    from sparktrainer.contracts.schemas import write

    for path in write(args.out):
        print(path)
    return 0
