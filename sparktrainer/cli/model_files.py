"""``sparktrainer models download REF DIR``: every file of a model, each sha256 verified.

Through the HTTP API (``--api URL``, bearer token from ``--token`` or SPARKTRAINER_API_TOKEN:
no S3 credentials needed), or straight from S3 with the local read model. A file is written
as ``NAME.part`` and renamed only once its sha256 matches; a mismatch removes it and exits 1.
"""

from __future__ import annotations

import argparse
import hashlib
import os
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any
from urllib.parse import quote

from rich.markup import escape

from sparktrainer.cli.common import (
    NEGATIVE,
    OK,
    UNAVAILABLE,
    CliError,
    add_db_options,
    command,
    err,
    load_settings,
    out,
    print_json,
    read_model,
)
from sparktrainer.cli.model_refs import found
from sparktrainer.contracts.jobspec import check_relative_key
from sparktrainer.settings import Settings

Opener = Callable[[dict[str, Any]], Iterator[bytes]]


def add_download_action(sub: Any) -> None:
    """Add ``download`` to ``models``."""
    p = sub.add_parser("download", help="a model's files into a folder, sha256 verified")
    p.add_argument("ref", metavar="REF", help="ID, NAME:VERSION or NAME@ALIAS")
    p.add_argument("dir", metavar="DIR")
    p.add_argument("--api", default=os.environ.get("SPARKTRAINER_API_URL"),
                   help="through this API (e.g. http://127.0.0.1:8080) instead of S3")  # fmt: skip
    p.add_argument("--token", help="the API's bearer token (default SPARKTRAINER_API_TOKEN)")
    p.add_argument("--json", action="store_true")
    add_db_options(p)
    p.set_defaults(func=cmd_download)


def _from_store(
    settings: Settings, args: argparse.Namespace
) -> tuple[list[dict[str, Any]], Opener]:
    from sparktrainer.registry.files import model_files
    from sparktrainer.storage.s3 import ObjectStore

    model = found(read_model(settings, args), args.ref)
    if model["status"] == "deleted":
        raise CliError(f"Model '{model['model_id']}' is deleted: its files are not served")
    store = ObjectStore.from_settings(settings)
    return model_files(model, store), lambda f: store.stream(f["key"])


def _from_api(settings: Settings, args: argparse.Namespace) -> tuple[list[dict[str, Any]], Opener]:
    import httpx

    token = args.token or (settings.api_token.get_secret_value() if settings.api_token else None)
    headers = {"Authorization": f"Bearer {token}"} if token else {}
    client = httpx.Client(base_url=args.api.rstrip("/"), headers=headers, timeout=60.0)
    base = f"/api/models/{args.ref}/files"
    try:
        listing = client.get(base)
    except httpx.HTTPError as e:
        raise CliError(f"API at {args.api} unreachable: {e}", UNAVAILABLE) from e
    if listing.status_code != 200:
        raise CliError(f"API answered {listing.status_code}: {listing.text[:300]}")

    def opener(f: dict[str, Any]) -> Iterator[bytes]:
        with client.stream("GET", f"{base}/{quote(f['path'])}") as r:
            if r.status_code != 200:
                raise CliError(f"API answered {r.status_code} for {f['path']}")
            yield from r.iter_bytes(1 << 20)

    return _entries(listing), opener


def _entries(listing: Any) -> list[dict[str, Any]]:
    """The API's file list, checked: each entry a path, a size and a sha256."""
    try:
        files = listing.json()["files"]
        ok = isinstance(files, list) and all(
            isinstance(f["path"], str) and isinstance(f["size_bytes"], int)
            and isinstance(f["sha256"], str) and len(f["sha256"]) == 64 for f in files
        )  # fmt: skip
    except (ValueError, KeyError, TypeError) as e:
        raise CliError(f"the API's file list is not readable: {e}") from e
    if not ok:
        raise CliError("the API's file list is not readable (path, size_bytes, sha256 each)")
    return files  # type: ignore[no-any-return]


def fetch_file(folder: Path, entry: dict[str, Any], opener: Opener) -> bool:
    """Write one file under ``folder`` if its sha256 matches; False (and nothing left) if not."""
    path = str(entry["path"])
    try:
        check_relative_key(path)
    except ValueError as e:
        raise CliError(f"refusing file {path[:100]!r}: {e}") from e
    target = (folder / path).resolve()
    if not target.is_relative_to(folder.resolve()):
        raise CliError(f"refusing file {path[:100]!r}: it would land outside {folder}")
    target.parent.mkdir(parents=True, exist_ok=True)
    part = target.with_name(target.name + ".part")
    digest = hashlib.sha256()
    with part.open("wb") as f:
        for chunk in opener(entry):
            digest.update(chunk)
            f.write(chunk)
    if digest.hexdigest() != entry["sha256"]:
        part.unlink()
        return False
    part.replace(target)
    return True


@command
def cmd_download(args: argparse.Namespace) -> int:
    """Download every file of a model; exit 1 if any sha256 does not match."""
    settings = load_settings()
    files, opener = (_from_api if args.api else _from_store)(settings, args)
    folder = Path(args.dir)
    folder.mkdir(parents=True, exist_ok=True)
    bad = [f["path"] for f in files if not fetch_file(folder, f, opener)]
    if args.json:
        print_json({"dir": str(folder), "files": files, "sha256_mismatch": bad})
    else:
        for f in files:
            mark = "[red]sha256 mismatch[/]" if f["path"] in bad else "[green]ok[/]"
            out.print(f"{escape(f['path'])}  {f['size_bytes']} B  {mark}")
    if bad:
        err.print(f"[red]error:[/] {len(bad)} file(s) did not match their sha256: removed")
        return NEGATIVE
    return OK
