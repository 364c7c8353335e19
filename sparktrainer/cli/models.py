"""``sparktrainer models list|show|lineage``: the models list, from the registry read model.

The read model is caught up with the log before each query (see ``common.read_model``), so
these commands need Kafka but no running projector or API; ``--no-sync`` reads it as is.
"""

from __future__ import annotations

import argparse
from typing import Any

from rich.markup import escape
from rich.table import Table
from rich.tree import Tree

from sparktrainer.cli.common import (
    OK,
    CliError,
    add_db_options,
    command,
    load_settings,
    out,
    print_fields,
    print_json,
)
from sparktrainer.cli.common import read_model as _read_model
from sparktrainer.registry.models import get_model, lineage, list_models


def register(subparsers: Any) -> None:
    """Add ``models`` and its actions."""
    models = subparsers.add_parser("models", help="registered models: list, show, lineage")
    sub = models.add_subparsers(dest="models_command", metavar="ACTION", required=True)
    p = sub.add_parser("list", help="registered models, newest first")
    p.add_argument("--framework", choices=("pytorch", "huggingface"))
    p.add_argument("--base", dest="base_model_id", help="only fine-tunes of this model")
    p.add_argument("--tag")
    p.add_argument("--limit", type=int, default=50)
    p.add_argument("--offset", type=int, default=0)
    p.add_argument("--json", action="store_true")
    add_db_options(p)
    p.set_defaults(func=cmd_models_list)
    for name, func, text in (
        ("show", cmd_model_show, "one model: files, metrics, metadata"),
        ("lineage", cmd_lineage, "a model's ancestors and children"),
    ):
        p = sub.add_parser(name, help=text)
        p.add_argument("model_id")
        p.add_argument("--json", action="store_true")
        add_db_options(p)
        p.set_defaults(func=func)


def _size(n: int) -> str:
    size = float(n)
    for unit in ("B", "KB", "MB", "GB"):
        if size < 1024 or unit == "GB":
            return f"{size:.0f} {unit}" if unit == "B" else f"{size:.1f} {unit}"
        size /= 1024
    return str(n)


def _metric(metrics: dict[str, float]) -> str:
    for name in ("val_accuracy", "accuracy", "val_loss", "loss"):
        if name in metrics:
            return f"{name} {metrics[name]:.4g}"
    return ""


@command
def cmd_models_list(args: argparse.Namespace) -> int:
    """The models list as a table (or JSON)."""
    registry = _read_model(load_settings(), args)
    page = registry.read(
        list_models,
        framework=args.framework,
        base_model_id=args.base_model_id,
        tag=args.tag,
        limit=args.limit,
        offset=args.offset,
    )
    if args.json:
        print_json(page.as_dict("models"))
        return OK
    table = Table("model id", "name", "framework", "task", "base", "metric", "size", "created")
    for m in page.items:
        table.add_row(
            *(
                escape(m[k] or "")
                for k in ("model_id", "name", "framework", "task", "base_model_id")
            ),
            _metric(m["metrics"]),
            _size(m["size_bytes"]),
            m["created_at"][:19],
        )
    out.print(table)
    out.print(f"{len(page.items)} of {page.total} models")
    return OK


@command
def cmd_model_show(args: argparse.Namespace) -> int:
    """One model with its files; exit 2 when unknown."""
    model = _read_model(load_settings(), args).read(get_model, args.model_id)
    if model is None:
        raise CliError(f"No model '{args.model_id}' in the registry read model")
    if args.json:
        print_json(model)
        return OK
    print_fields(
        model,
        (
            "model_id",
            "name",
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
    tree_data = _read_model(load_settings(), args).read(lineage, args.model_id)
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
    return f"{escape(item['model_id'])} [dim]{escape(item['name'])}[/]"
