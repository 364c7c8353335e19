"""The README's "Security and limits" table is generated from ``Limits``: it cannot drift."""

from __future__ import annotations

import re
from pathlib import Path

from sparktrainer.contracts.caps import setting, show_bytes
from sparktrainer.settings import Limits

README = Path(__file__).resolve().parents[2] / "README.md"
START, END = "<!-- limits:start -->", "<!-- limits:end -->"


def _default(name: str, value: float) -> str:
    if name.endswith("_bytes") and isinstance(value, int):
        return f"{value:,} ({show_bytes(value)})"
    if name.endswith("_s"):
        return f"{value:,.0f} s ({value / 86400:g} days)" if value >= 86400 else f"{value:g} s"
    return f"{value:,}" if isinstance(value, int) else f"{value:g}"


def limits_table() -> str:
    """The table, one row per cap: its setting, its default, what it bounds."""
    rows = ["| Setting | Default | What it bounds |", "| --- | --- | --- |"]
    for name, field in Limits.model_fields.items():
        rows.append(
            f"| `{setting(name)}` | {_default(name, field.default)} | {field.description} |"
        )
    return "\n".join(rows)


def test_the_readme_lists_every_cap_with_its_default_and_setting() -> None:
    text = README.read_text()
    found = re.search(re.escape(START) + r"\n(.*?)\n" + re.escape(END), text, re.S)
    assert found, f"README.md needs the limits table between {START} and {END}"
    assert found.group(1) == limits_table(), "regenerate it:\n" + limits_table()


def test_every_cap_says_what_it_bounds() -> None:
    assert all(field.description for field in Limits.model_fields.values())
