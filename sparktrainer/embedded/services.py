"""The SparkTrainer processes the stack runs beside the servers, and how to tell they are ready."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

READY_MARKERS = ("READY", "consumer_ready")


def logged_ready(text: str) -> bool:
    """Default readiness of a service: its log has a line with READY or consumer_ready."""
    return any(marker in text for marker in READY_MARKERS)


@dataclass(frozen=True)
class ServiceSpec:
    """A process the stack runs as ``python ARGS...``; ready once ready(its log so far) holds."""

    name: str
    args: tuple[str, ...]
    ready: Callable[[str], bool] = logged_ready
    ready_timeout_s: float = 180.0


DEFAULT_SERVICES: tuple[ServiceSpec, ...] = (
    ServiceSpec("validator", ("-m", "consumers.validator")),
    ServiceSpec("trainer", ("-m", "consumers.trainer")),
    ServiceSpec("registry_projector", ("-m", "consumers.registry_projector")),
)
