"""SparkTrainer: an event-driven training job runner on Kafka and S3."""

from __future__ import annotations

from typing import Any

__version__ = "0.1.0"
__all__ = ["AsyncClient", "Client"]


def __getattr__(name: str) -> Any:
    """``sparktrainer.Client`` loads the client on first use (the CLI never pays for it)."""
    if name in __all__:
        from sparktrainer.client import api

        return getattr(api, name)
    raise AttributeError(f"module 'sparktrainer' has no attribute {name!r}")
