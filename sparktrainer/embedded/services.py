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
    """A process the stack runs as ``python ARGS...``; ready once ready(its log so far) holds.

    ``ports`` names the ports it listens on and the variable that tells it each one; the
    stack picks them once per home (unless the variable is set) and keeps them in stack.json.
    With ``http_ready`` the service is ready once its first port answers HTTP at that path.
    """

    name: str
    args: tuple[str, ...]
    ready: Callable[[str], bool] = logged_ready
    ready_timeout_s: float = 180.0
    ports: tuple[tuple[str, str], ...] = ()
    http_ready: str | None = None


DEFAULT_SERVICES: tuple[ServiceSpec, ...] = (
    ServiceSpec(
        "validator",
        ("-m", "consumers.validator"),
        ports=(("validator_metrics", "SPARKTRAINER_VALIDATOR_METRICS_PORT"),),
    ),
    ServiceSpec(
        "trainer",
        ("-m", "consumers.trainer"),
        ports=(("trainer_metrics", "SPARKTRAINER_TRAINER_METRICS_PORT"),),
    ),
    ServiceSpec(
        "registry_projector",
        ("-m", "consumers.registry_projector"),
        ports=(("projector_metrics", "SPARKTRAINER_PROJECTOR_METRICS_PORT"),),
    ),
    ServiceSpec(
        "sweep_controller",
        ("-m", "consumers.sweep_controller"),
        ports=(("sweep_controller_metrics", "SPARKTRAINER_SWEEP_CONTROLLER_METRICS_PORT"),),
    ),
    # The HTTP API: the dashboard at /, its metrics at /metrics; it reads the projector's file.
    ServiceSpec(
        "api",
        ("-m", "sparktrainer.cli.main", "serve", "api"),
        ports=(("api", "SPARKTRAINER_API_PORT"),),
        http_ready="/api/health",
    ),
)
