"""The Python client: ``sparktrainer.Client`` (sync) and ``AsyncClient``, over the HTTP API.

Loaded lazily: the CLI imports ``sparktrainer.client.follow`` and must not pay for httpx.
"""

from __future__ import annotations

from typing import Any

__all__ = ["AsyncClient", "Client"]


def __getattr__(name: str) -> Any:
    if name in __all__:
        from sparktrainer.client import api

        return getattr(api, name)
    raise AttributeError(f"module 'sparktrainer.client' has no attribute {name!r}")
