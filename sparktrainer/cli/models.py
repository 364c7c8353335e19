"""``sparktrainer models list|show|lineage``: the models list, from the registry read model.

Everywhere a model is named, REF is its id, NAME:VERSION or NAME@ALIAS. The actions that
change the registry (alias, archive, delete) are in ``cli/model_changes.py``, downloads in
``cli/model_files.py``.

The read model is caught up with the log before each query (see ``common.read_model``), so
these commands need Kafka but no running projector or API; ``--no-sync`` reads it as is.
"""

from __future__ import annotations

import argparse
from typing import Any

from rich.markup import escape
from rich.table import Table
from rich.tree import Tree

from sparktrainer.cli import model_changes, model_files
from sparktrainer.cli.common import (
    OK,
    CliError,
    add_db_options,
    command,
    id_column,
    load_settings,
    out,
    print_fields,
    print_json,
)
from sparktrainer.cli.common import read_model as _read_model
from sparktrainer.cli.model_refs import found
from sparktrainer.registry.models import lineage, list_models
from sparktrainer.registry.search import STATUS_FILTERS, MetricBound, ModelQuery, SearchError


def register(subparsers: Any) -> None:
    """Add ``models`` and its actions."""
    models = subparsers.add_parser("models", help="registered models: list, show, lineage")
    sub = models.add_subparsers(dest="models_command", metavar="ACTION", required=True)
    _list_parser(sub.add_parser("list", help="search registered models (live ones by default)"))
    for name, func, text in (
        ("show", cmd_model_show, "one model: files, metrics, metadata, names, aliases"),
        ("lineage", cmd_lineage, "a model's ancestors and children"),
    ):
        p = sub.add_parser(name, help=text)
        p.add_argument("model_id", metavar="REF", help="ID, NAME:VERSION or NAME@ALIAS")
        p.add_argument("--json", action="store_true")
        add_db_options(p)
        p.set_defaults(func=func)
    model_changes.add_change_actions(sub)
    model_files.add_download_action(sub)


def _list_parser(p: argparse.ArgumentParser) -> None:
    p.add_argument("--name", help="only versions of this registered name")
    p.add_argument("--alias", help="only models an alias of this name points at (or 'latest')")
    p.add_argument("--tag")
    p.add_argument("--framework", choices=("pytorch", "huggingface"))
    p.add_argument("--task")
    p.add_argument("--base", dest="base_model_id", help="only fine-tunes of this model")
    p.add_argument("--status", choices=STATUS_FILTERS, default="live")
    p.add_argument("--created-after", help="ISO date or time")
    p.add_argument("--created-before", help="ISO date or time")
    p.add_argument("--metric", action="append", default=[], help="e.g. 'val_accuracy>=0.9'")
    p.add_argument("--sort", default="created_at", help="created_at, version, name or a metric")
    p.add_argument("--asc", action="store_true", help="ascending (default: descending)")
    p.add_argument("--limit", type=int, default=50)
    p.add_argument("--offset", type=int, default=0)
    p.add_argument("--json", action="store_true")
    add_db_options(p)
    p.set_defaults(func=cmd_models_list)


def model_query(args: argparse.Namespace) -> ModelQuery:
    """The search the list arguments ask for (CliError when one cannot be used)."""
    try:
        return ModelQuery(
            framework=args.framework, base_model_id=args.base_model_id, tag=args.tag,
            name=args.name, alias=args.alias, task=args.task, status=args.status,
            created_after=args.created_after, created_before=args.created_before,
            metrics=tuple(MetricBound.parse(m) for m in args.metric), sort=args.sort,
            descending=not args.asc, limit=args.limit, offset=args.offset,
        )  # fmt: skip
    except SearchError as e:
        raise CliError(str(e)) from e


def _size(n: int) -> str:
    size = float(n)
    for unit in ("B", "KB", "MB", "GB"):
        if size < 1024 or unit == "GB":
            return f"{size:.0f} {unit}" if unit == "B" else f"{size:.1f} {unit}"
        size /= 1024
    return str(n)


def _metric(headline: dict[str, Any] | None) -> str:
    return f"{headline['name']} {headline['value']:.4g}" if headline else ""


@command
def cmd_models_list(args: argparse.Namespace) -> int:
    """The models list as a table (or JSON)."""
    query = model_query(args)
    registry = _read_model(load_settings(), args)
    try:
        page = registry.read(list_models, query)
    except SearchError as e:
        raise CliError(str(e)) from e
    if args.json:
        print_json(page.as_dict("models"))
        return OK
    ids = [m["model_id"] for m in page.items]
    table = Table(id_column("model id", ids), "name", "version", "aliases", "tenant",
                  "framework", "task", "metric", "size", "created")  # fmt: skip
    for m in page.items:
        version = f"{m['registered_name']}:{m['version']}" if m["registered_name"] else ""
        table.add_row(
            escape(m["model_id"]),
            escape(m["name"] or ""),
            escape(version) + ("" if m["status"] == "live" else f" [dim]({m['status']})[/]"),
            escape(", ".join(a.split("@", 1)[1] for a in m["aliases"])),
            escape(m["tenant"]),
            escape(m["framework"]),
            escape(m["task"]),
            _metric(m["headline_metric"]),
            _size(m["size_bytes"]),
            m["created_at"][:19],
        )
    out.print(table)
    out.print(f"{len(page.items)} of {page.total} models")
    return OK


@command
def cmd_model_show(args: argparse.Namespace) -> int:
    """One model with its files; exit 2 when unknown."""
    model = found(_read_model(load_settings(), args), args.model_id)
    if args.json:
        print_json(model)
        return OK
    print_fields(
        model,
        (
            "model_id",
            "name",
            "registered_name",
            "version",
            "aliases",
            "status",
            "retired",
            "tenant",
            "framework",
            "task",
            "base_model_id",
            "job_id",
            "created_at",
            "license",
            "domain",
            "description",
            "tags",
            "metrics",
            "storage_prefix",
        ),
    )
    files = Table("file", "size", "sha256")
    for a in model["artifacts"]:
        files.add_row(escape(a["path"]), _size(a["size_bytes"]), a["sha256"])
    out.print(files)
    return OK


@command
def cmd_lineage(args: argparse.Namespace) -> int:
    """A model's ancestry as a tree, root first; exit 2 when unknown."""
    registry = _read_model(load_settings(), args)
    tree_data = registry.read(lineage, found(registry, args.model_id)["model_id"])
    if tree_data is None:
        raise CliError(f"No model '{args.model_id}' in the registry read model")
    if args.json:
        print_json(tree_data)
        return OK
    chain = [*reversed(tree_data["ancestors"]), tree_data["model"]]
    root = Tree(_label(chain[0]))
    node = root
    for item in chain[1:]:
        node = node.add(_label(item))
    node.label = f"[bold]{node.label}[/]"
    for child in tree_data["children"]:
        node.add(_label(child))
    out.print(root)
    return OK


def _label(item: dict[str, Any]) -> str:
    if not item.get("registered"):
        return f"{escape(item['model_id'])} [dim](not in the registry)[/]"
    label = f"{escape(item['model_id'])} [dim]{escape(item['name'])}[/]"
    return f"{label}  data: {escape(data_label(item.get('data')))}"


def data_label(data: dict[str, Any] | None) -> str:
    """A model's data identity on one line: the source, its sha256 and size, or its sampling."""
    if not data:
        return "not recorded"
    sampling = " ".join(f"{k}={v}" for k, v in sorted(data.get("sampling", {}).items()))
    if data["kind"] != "s3":
        return f"{data['source']} ({sampling})"
    count = data.get("object_count", 0)
    objects = f", {count} objects" if count != 1 else ""
    return f"{data['source']} sha256 {data['sha256'][:16]} ({_size(data['size_bytes'])}{objects})"
