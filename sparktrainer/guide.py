"""The guide's JSON examples, read from the guide itself (``docs/MODEL_CREATION_GUIDE.md``).

The demo, the tests and the benchmarks use the guide's jobs through these functions instead of
copies typed again, so what users were promised is what runs. The guide ships with the source
tree (the demo runs from a checkout: ``make demo``).
"""

from __future__ import annotations

import copy
import json
import re
from dataclasses import dataclass
from pathlib import Path
from typing import Any

GUIDE = Path(__file__).resolve().parents[1] / "docs" / "MODEL_CREATION_GUIDE.md"
_BLOCK = re.compile(r"```json\n(.*?)```", re.S)
_HEADING = re.compile(r"^#+ +(.+?) *$", re.M)


@dataclass(frozen=True)
class Example:
    """One JSON block of the guide, named by the heading above it ("(2)" for a second one)."""

    key: str
    body: dict[str, Any]


def keyed_examples(path: Path = GUIDE) -> list[Example]:
    """Every JSON block of the guide in order, each with its key (a leading 'POST ...' line
    stripped)."""
    text = path.read_text()
    headings = [(m.start(), m.group(1)) for m in _HEADING.finditer(text)]
    out: list[Example] = []
    seen: list[str] = []  # the heading of each block so far
    for block in _BLOCK.finditer(text):
        heading = next((h for at, h in reversed(headings) if at < block.start()), "(top)")
        lines = [ln for ln in block.group(1).splitlines() if not ln.startswith(("POST ", "GET "))]
        nth = seen.count(heading) + 1
        seen.append(heading)
        out.append(
            Example(heading if nth == 1 else f"{heading} ({nth})", json.loads("\n".join(lines)))
        )
    return out


def examples(path: Path = GUIDE) -> list[dict[str, Any]]:
    """Every JSON block of the guide, with a leading 'POST /api/jobs' line stripped."""
    return [e.body for e in keyed_examples(path)]


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
