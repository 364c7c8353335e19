"""The guide's JSON examples, read from the guide itself (``docs/MODEL_CREATION_GUIDE.md``).

The demo, the tests and the benchmarks use the guide's jobs through these functions instead of
copies typed again, so what users were promised is what runs. The guide ships with the source
tree (the demo runs from a checkout: ``make demo``).
"""

from __future__ import annotations

import copy
import json
import re
from pathlib import Path
from typing import Any

GUIDE = Path(__file__).resolve().parents[1] / "docs" / "MODEL_CREATION_GUIDE.md"
_BLOCK = re.compile(r"```json\n(.*?)```", re.S)


def examples(path: Path = GUIDE) -> list[dict[str, Any]]:
    """Every JSON block of the guide, with a leading 'POST /api/jobs' line stripped."""
    out = []
    for block in _BLOCK.findall(path.read_text()):
        lines = [ln for ln in block.splitlines() if not ln.startswith(("POST ", "GET "))]
        out.append(json.loads("\n".join(lines)))
    return out


def complete_jobs(path: Path = GUIDE) -> list[dict[str, Any]]:
    """The examples that are whole jobs (they name a type and a framework)."""
    return [e for e in examples(path) if "type" in e and "framework" in e]


def by_name(name: str, path: Path = GUIDE) -> dict[str, Any]:
    """The workflow example with this name (read afresh: change it freely)."""
    return next(e for e in complete_jobs(path) if e.get("name") == name)


def with_config(job: dict[str, Any], **config: Any) -> dict[str, Any]:
    """A copy of a guide job with some config fields replaced (fewer epochs, a parent id)."""
    out = copy.deepcopy(job)
    out["config"].update(config)
    return out
