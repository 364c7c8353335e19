"""The embedded stack: a real S3 server and a Kafka-compatible broker, started with `pip` only."""

from sparktrainer.embedded.processes import ProcessRecord, ProcessStartError, StackError
from sparktrainer.embedded.servers import Credentials, embedded_available
from sparktrainer.embedded.services import DEFAULT_SERVICES, ServiceSpec, logged_ready
from sparktrainer.embedded.stack import EmbeddedStack

__all__ = [
    "DEFAULT_SERVICES",
    "Credentials",
    "EmbeddedStack",
    "ProcessRecord",
    "ProcessStartError",
    "ServiceSpec",
    "StackError",
    "embedded_available",
    "logged_ready",
]
