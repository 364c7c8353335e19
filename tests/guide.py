"""The guide's JSON examples, read from the guide itself (docs/, kept equal to ../shared/)."""

from __future__ import annotations

import json
import re
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
GUIDE = ROOT / "docs" / "MODEL_CREATION_GUIDE.md"
SHARED_GUIDE = ROOT.parent / "shared" / "MODEL_CREATION_GUIDE.md"
_BLOCK = re.compile(r"```json\n(.*?)```", re.S)


def examples() -> list[dict[str, Any]]:
    """Every JSON block of the guide, with a leading 'POST /api/jobs' line stripped."""
    out = []
    for block in _BLOCK.findall(GUIDE.read_text()):
        lines = [ln for ln in block.splitlines() if not ln.startswith(("POST ", "GET "))]
        out.append(json.loads("\n".join(lines)))
    return out


def complete_jobs() -> list[dict[str, Any]]:
    """The examples that are whole jobs (they name a type and a framework)."""
    return [e for e in examples() if "type" in e and "framework" in e]


def by_name(name: str) -> dict[str, Any]:
    """The workflow example with this name."""
    return next(e for e in complete_jobs() if e.get("name") == name)
