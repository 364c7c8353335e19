"""The guide's JSON examples, read from the guide itself (docs/, kept equal to ../shared/)."""

from __future__ import annotations

from pathlib import Path

from sparktrainer.guide import GUIDE, by_name, complete_jobs, examples, with_config

SHARED_GUIDE = Path(__file__).resolve().parents[1].parent / "shared" / "MODEL_CREATION_GUIDE.md"

__all__ = ["GUIDE", "SHARED_GUIDE", "by_name", "complete_jobs", "examples", "with_config"]
