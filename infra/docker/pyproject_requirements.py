"""Print the requirement lines of pyproject.toml: the base dependencies plus the named extras.

    python pyproject_requirements.py pyproject.toml train[,embedded]

Used by infra/Dockerfile to install the heavy dependencies (torch, transformers...) in their
own layer, before the source is copied, so that editing code does not reinstall torch.
The result is the same set pip would install for ``pip install ".[train]"``.
"""

from __future__ import annotations

import sys
import tomllib


def requirements(pyproject: str, extras: str) -> list[str]:
    with open(pyproject, "rb") as f:
        project = tomllib.load(f)["project"]
    lines = list(project.get("dependencies", []))
    optional = project.get("optional-dependencies", {})
    for extra in filter(None, (e.strip() for e in extras.split(","))):
        if extra not in optional:
            raise SystemExit(f"unknown extra {extra!r}; pyproject.toml has {sorted(optional)}")
        lines.extend(optional[extra])
    return lines


if __name__ == "__main__":
    if len(sys.argv) != 3:
        raise SystemExit(__doc__)
    print("\n".join(requirements(sys.argv[1], sys.argv[2])))
