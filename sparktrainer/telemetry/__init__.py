"""Telemetry: Prometheus metrics of every service, and W3C/OpenTelemetry tracing of every job."""
