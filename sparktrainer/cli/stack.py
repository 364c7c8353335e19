"""``sparktrainer up / down / status``: run the embedded stack and the consumers on this machine.

``stack_settings()`` (through ``cli.common.load_settings``) is how every other command finds
the servers: the environment first, else the stack that ``sparktrainer up --detach`` left
running in SPARKTRAINER_HOME.
"""

from __future__ import annotations

import argparse
import json
import signal
import sys
import time
from types import FrameType
from typing import Any

from sparktrainer.embedded import EmbeddedStack, ProcessRecord, embedded_available
from sparktrainer.embedded.servers import missing_message
from sparktrainer.embedded.services import DEFAULT_SERVICES
from sparktrainer.errors import SparkTrainerError
from sparktrainer.logging import configure
from sparktrainer.settings import Settings

_SUPERVISE_INTERVAL_S = 0.5


def register(subparsers: Any) -> None:
    """Add the ``up``, ``down`` and ``status`` commands."""
    up = subparsers.add_parser(
        "up",
        help="start the embedded Kafka + S3 and the consumers (Ctrl-C stops them)",
        description="Start SeaweedFS (S3), tansu (Kafka) and the services ("
        + ", ".join(s.name.replace("_", " ") for s in DEFAULT_SERVICES)
        + "), with data in SPARKTRAINER_HOME. When SPARKTRAINER_KAFKA_BOOTSTRAP_SERVERS and "
        "SPARKTRAINER_S3_ENDPOINT are set, those servers are used and only the services start.",
    )
    up.add_argument("--detach", action="store_true", help="return once ready; stop with `down`")
    up.add_argument("--no-services", action="store_true", help="start the servers only")
    up.set_defaults(func=run_up)
    down = subparsers.add_parser("down", help="stop what `sparktrainer up --detach` started")
    down.set_defaults(func=run_down)
    status = subparsers.add_parser("status", help="show what runs (exit 1 unless all of it)")
    status.add_argument("--json", action="store_true", help="print stack.json-like JSON")
    status.set_defaults(func=run_status)


def stack_settings(**overrides: Any) -> Settings:
    """Settings from the environment; Kafka/S3 addresses left unset come from a running stack."""
    settings = Settings(**overrides)
    if settings.kafka_bootstrap_servers and settings.s3_endpoint:
        return settings
    try:
        stack = EmbeddedStack.load(settings.home, settings)
    except SparkTrainerError:
        return settings  # an unreadable stack.json: the command will say what is missing
    if stack is None or not stack.servers_running():
        return settings
    return stack.settings_for(settings, fill_missing_only=True)


def _config_problem(settings: Settings) -> str | None:
    """Why `up` cannot run with these settings, or None."""
    kafka, s3 = settings.kafka_bootstrap_servers, settings.s3_endpoint
    if bool(kafka) != bool(s3):
        return (
            "only one of SPARKTRAINER_KAFKA_BOOTSTRAP_SERVERS / SPARKTRAINER_S3_ENDPOINT is "
            "set: set both to use external servers, or neither for the embedded stack"
        )
    if not kafka and not embedded_available(settings.embedded_bin_dir):
        return (
            missing_message(settings.embedded_bin_dir) + "; or set "
            "SPARKTRAINER_KAFKA_BOOTSTRAP_SERVERS and SPARKTRAINER_S3_ENDPOINT"
        )
    return None


def run_up(args: argparse.Namespace) -> int:
    """Start the stack; in the foreground, supervise it until Ctrl-C or SIGTERM."""
    settings = Settings()
    configure(settings.log_level)
    problem = _config_problem(settings)
    if problem:
        print(f"sparktrainer up: {problem}", file=sys.stderr)
        return 2
    external = bool(settings.kafka_bootstrap_servers)
    stack = EmbeddedStack(settings.home, settings=settings, external=external)
    if not args.detach and any(stack.status().values()):
        print(
            f"sparktrainer up: a stack already runs in {stack.home}; "
            "`sparktrainer status` shows it, `sparktrainer down` stops it",
            file=sys.stderr,
        )
        return 1
    # Also when started with SIGINT ignored (`sparktrainer up &` from a script): stop cleanly.
    signal.signal(signal.SIGINT, signal.default_int_handler)
    signal.signal(signal.SIGTERM, _raise_interrupt)
    try:
        stack.start(with_services=not args.no_services)
    except (SparkTrainerError, KeyboardInterrupt) as e:
        print(f"sparktrainer up: {str(e) or 'interrupted'}", file=sys.stderr)
        return 1
    _print_addresses(stack)
    if args.detach:
        print("stop it with: sparktrainer down")
        return 0
    print("press Ctrl-C to stop", flush=True)
    try:
        return _supervise(stack)
    except KeyboardInterrupt:
        return 0
    finally:
        # A second Ctrl-C must not cut the shutdown short and leave servers behind.
        signal.signal(signal.SIGINT, signal.SIG_IGN)
        signal.signal(signal.SIGTERM, signal.SIG_IGN)
        stack.stop()
        print("stopped")


def _raise_interrupt(signum: int, frame: FrameType | None) -> None:
    raise KeyboardInterrupt


def _supervise(stack: EmbeddedStack) -> int:
    """Wait while everything runs; 0 when `down` stopped it, 1 when a process died."""
    while True:
        time.sleep(_SUPERVISE_INTERVAL_S)
        status = stack.status()
        if not status:
            print("the stack was stopped (sparktrainer down)")
            return 0
        dead = [name for name, alive in status.items() if not alive]
        if dead:
            for name in dead:
                print(f"{name} exited; see {stack.logs_dir / (name + '.log')}", file=sys.stderr)
            return 1


def _print_addresses(stack: EmbeddedStack) -> None:
    settings = stack.settings_for()
    print(f"SparkTrainer stack ({stack.mode}) in {stack.home}")
    print(f"  Kafka bootstrap servers  {stack.kafka_bootstrap_servers}")
    print(f"  S3 endpoint              {stack.s3_endpoint}  (bucket {settings.s3_bucket})")
    if not stack.external:
        print(f"  S3 keys                  {stack.home / 'credentials.json'}")
    for name, record in stack.processes().items():
        print(f"  {name:<24} pid {record.pid}  log {record.log}")
    running = stack.processes()
    for name, url in stack.metrics_urls().items():
        if any(name in service for service in running):
            print(f"  metrics {name:<16} {url}")
    if stack.dashboard_url and "api" in running:
        print(f"  Dashboard                {stack.dashboard_url}")


def run_down(args: argparse.Namespace) -> int:
    """Stop every process recorded in SPARKTRAINER_HOME/stack.json."""
    settings = Settings()
    configure(settings.log_level)
    try:
        stack = EmbeddedStack.load(settings.home, settings)
        stopped = stack.stop() if stack is not None else []
    except SparkTrainerError as e:
        print(f"sparktrainer down: {e}", file=sys.stderr)
        return 1
    print(f"stopped: {', '.join(stopped)}" if stopped else "nothing was running")
    return 0


def run_status(args: argparse.Namespace) -> int:
    """Print the stack's addresses and each process; exit 0 only when all of them run."""
    settings = Settings()
    try:
        stack = EmbeddedStack.load(settings.home, settings)
    except SparkTrainerError as e:
        print(f"sparktrainer status: {e}", file=sys.stderr)
        return 1
    if stack is None:
        print(f"no stack in {settings.home.resolve()} (start one with `sparktrainer up`)")
        return 1
    records, status = stack.processes(), stack.status()
    if args.json:
        print(json.dumps(_status_json(stack, records, status), indent=2))
    else:
        print(f"SparkTrainer stack ({stack.mode}) in {stack.home}")
        if stack.ports or stack.external:
            print(f"  Kafka {stack.kafka_bootstrap_servers}   S3 {stack.s3_endpoint}")
        for name, record in records.items():
            state = "running" if status[name] else "dead"
            print(f"  {name:<20} {state:<8} pid {record.pid:<8} log {record.log}")
        if not records:
            print("  nothing runs")
    return 0 if status and all(status.values()) else 1


def _status_json(
    stack: EmbeddedStack, records: dict[str, ProcessRecord], status: dict[str, bool]
) -> dict[str, Any]:
    has_addresses = bool(stack.ports or stack.external)
    return {
        "home": str(stack.home),
        "mode": stack.mode,
        "kafka_bootstrap_servers": stack.kafka_bootstrap_servers if has_addresses else None,
        "s3_endpoint": stack.s3_endpoint if has_addresses else None,
        "processes": {
            name: {"pid": rec.pid, "running": status[name], "log": rec.log}
            for name, rec in records.items()
        },
    }
