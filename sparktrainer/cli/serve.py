"""``sparktrainer serve api|validator|trainer|projector``: run one component in this process."""

from __future__ import annotations

import argparse
import importlib
import os
from typing import Any

from sparktrainer.cli.common import load_settings
from sparktrainer.settings import Settings

CONSUMERS = {
    "validator": "consumers.validator",
    "trainer": "consumers.trainer",
    "projector": "consumers.registry_projector",
    "sweep-controller": "consumers.sweep_controller",
}


def register(subparsers: Any) -> None:
    """Add ``serve``."""
    serve = subparsers.add_parser("serve", help="run the HTTP API or a consumer in this process")
    sub = serve.add_subparsers(dest="component", metavar="COMPONENT", required=True)
    p = sub.add_parser("api", help="the HTTP API (uvicorn)")
    p.add_argument(
        "--with-projector",
        action="store_true",
        help="fold the log into the read model in this process too",
    )
    p.add_argument("--host", help="default: SPARKTRAINER_API_HOST")
    p.add_argument("--port", type=int, help="default: SPARKTRAINER_API_PORT")
    p.add_argument("--db", help="read-model SQLite file (default: SPARKTRAINER_REGISTRY_DB)")
    p.set_defaults(func=cmd_api)
    for name, module in CONSUMERS.items():
        # No options of its own ('+' prefix): every argument, --help included, goes to the consumer.
        p = sub.add_parser(
            name,
            help=f"the {name} consumer ({module}); arguments go to it",
            add_help=False,
            prefix_chars="+",
        )
        p.add_argument("args", nargs=argparse.REMAINDER)
        p.set_defaults(func=cmd_consumer, module=module)


def _export(settings: Settings) -> None:
    """Consumers read settings from the environment: pass on the stack's resolved addresses."""
    values = {
        "SPARKTRAINER_KAFKA_BOOTSTRAP_SERVERS": settings.kafka_bootstrap_servers,
        "SPARKTRAINER_S3_ENDPOINT": settings.s3_endpoint,
        "SPARKTRAINER_S3_ACCESS_KEY": settings.s3_access_key
        and settings.s3_access_key.get_secret_value(),
        "SPARKTRAINER_S3_SECRET_KEY": settings.s3_secret_key
        and settings.s3_secret_key.get_secret_value(),
    }
    for name, value in values.items():
        if value and name not in os.environ:
            os.environ[name] = value


def cmd_consumer(args: argparse.Namespace) -> int:
    """Run a consumer's ``main`` (imported only now: the trainer pulls in torch)."""
    _export(load_settings())
    module = importlib.import_module(args.module)
    return int(module.main(args.args))


def cmd_api(args: argparse.Namespace) -> int:
    """Serve the API with uvicorn until SIGTERM/SIGINT."""
    import uvicorn

    from sparktrainer.api.app import create_app
    from sparktrainer.logging import configure
    from sparktrainer.telemetry.tracing import configure_tracing

    settings = load_settings()
    configure(settings.log_level)
    configure_tracing("api")
    app = create_app(settings, with_projector=args.with_projector, db_path=args.db)
    uvicorn.run(
        app,
        host=args.host or settings.api_host,
        port=args.port or settings.api_port,
        log_level=settings.log_level.lower(),
    )
    return 0
