"""``sparktrainer models alias|archive|delete|names|history``: the registry's names and changes.

    sparktrainer models alias digits@champion 3        # point the alias at version 3
    sparktrainer models alias digits@champion --remove
    sparktrainer models archive REF | delete REF       # REF: ID, NAME:VERSION or NAME@ALIAS
    sparktrainer models names [NAME]                   # names, or one name's versions
    sparktrainer models history digits@champion        # every move: who, when, from, to

Changes are checked against the read model (caught up first), then published on
models.changes, stamped with the tenant ``--tenant`` or ``SPARKTRAINER_TENANT`` names (default:
default; an operator's tool, trusted to write that topic): only the owner of a name or model
may change it. They show once the projector has folded them.
"""

from __future__ import annotations

import argparse
import getpass
from typing import Any

from pydantic import BaseModel
from rich.markup import escape
from rich.table import Table

from sparktrainer.cli.common import (
    OK,
    SOURCE,
    CliError,
    acting_tenant,
    add_db_options,
    add_tenant_option,
    command,
    id_column,
    load_settings,
    out,
    print_json,
    publish,
    read_model,
    run,
)
from sparktrainer.contracts.envelope import encode
from sparktrainer.registry import changes
from sparktrainer.registry.names import alias_history, get_name, list_names


def _who() -> str | None:
    try:
        return getpass.getuser()[:128]
    except (KeyError, OSError):  # no user name in this environment
        return None


def add_change_actions(sub: Any) -> None:
    """Add alias, archive, delete, names and history to ``models``."""
    p = sub.add_parser("alias", help="point NAME@ALIAS at a version (or --remove it)")
    p.add_argument("target", metavar="NAME@ALIAS")
    p.add_argument("version", nargs="?", type=int)
    p.add_argument("--remove", action="store_true", help="remove the alias")
    _change_options(p, cmd_alias)
    for name, func, text in (
        ("archive", cmd_archive, "archive a model: out of default lists, still a parent"),
        ("delete", cmd_delete, "delete a model: no fine-tunes, files removed after a grace"),
    ):
        p = sub.add_parser(name, help=text)
        p.add_argument("ref", metavar="REF", help="ID, NAME:VERSION or NAME@ALIAS")
        _change_options(p, func)
    for name, func, text, positional in (
        ("names", cmd_names, "registered names, or one name's versions and aliases", "name"),
        ("history", cmd_history, "every move of an alias: who, when, from, to", "target"),
    ):
        p = sub.add_parser(name, help=text)
        if positional == "name":
            p.add_argument("name", nargs="?")
        else:
            p.add_argument("target", metavar="NAME@ALIAS")
        p.add_argument("--json", action="store_true")
        add_db_options(p)
        p.set_defaults(func=func)


def _change_options(p: argparse.ArgumentParser, func: Any) -> None:
    p.add_argument(
        "--actor", default=None, help="who you are, shown beside the tenant (default: your user)"
    )
    p.add_argument("--reason")
    p.add_argument("--json", action="store_true")
    add_tenant_option(p)
    add_db_options(p)
    p.set_defaults(func=func)


def _split(target: str) -> tuple[str, str]:
    name, at, alias = target.partition("@")
    if not at or not name or not alias:
        raise CliError(f"'{target}' is not NAME@ALIAS")
    return name, alias


def _publish(args: argparse.Namespace, plan: Any, *plan_args: Any) -> BaseModel:
    """Check the change on the caught-up read model, then publish its event."""
    settings = load_settings()
    asker = changes.Asker(acting_tenant(settings, args), args.actor or _who())
    registry = read_model(settings, args)
    try:
        event: BaseModel = plan(registry.conn(), *plan_args, asker, args.reason)
    except changes.ChangeRefused as e:
        raise CliError(str(e)) from e
    run(publish(settings, encode(event, SOURCE)))
    if args.json:
        print_json({"published": type(event).ce_type, **event.model_dump(mode="json")})  # type: ignore[attr-defined]
    return event


@command
def cmd_alias(args: argparse.Namespace) -> int:
    """Set or remove NAME@ALIAS."""
    name, alias = _split(args.target)
    if args.remove:
        _publish(args, changes.alias_removed, name, alias)
        message = f"{name}@{alias} removed"
    elif args.version is None:
        raise CliError("give the VERSION the alias should point at, or --remove")
    else:
        _publish(args, changes.alias_set, name, alias, args.version)
        message = f"{name}@{alias} -> version {args.version}"
    if not args.json:
        out.print(escape(message))
    return OK


@command
def cmd_archive(args: argparse.Namespace) -> int:
    """Archive a model."""
    event = _publish(args, changes.archived, args.ref)
    if not args.json:
        out.print(f"archived {escape(getattr(event, 'model_id', ''))}")
    return OK


@command
def cmd_delete(args: argparse.Namespace) -> int:
    """Delete a model (its files go after the grace period)."""
    event = _publish(args, changes.deleted, args.ref)
    if not args.json:
        out.print(
            f"deleted {escape(getattr(event, 'model_id', ''))} (files removed after the grace)"
        )
    return OK


@command
def cmd_names(args: argparse.Namespace) -> int:
    """Registered names, or one name's versions and aliases."""
    registry = read_model(load_settings(), args)
    if args.name is None:
        page = registry.read(list_names, limit=1000)
        if args.json:
            print_json(page.as_dict("registered_models"))
            return OK
        table = Table("name", "tenant", "versions", "latest", "aliases", "updated")
        for n in page.items:
            aliases = ", ".join(f"{a}:{v}" for a, v in n["aliases"].items())
            row = (n["name"], n["tenant"], str(n["versions"]), str(n["latest_version"]), aliases)
            table.add_row(*map(escape, row), n["updated_at"][:19])
        out.print(table)
        return OK
    detail = registry.read(get_name, args.name)
    if detail is None:
        raise CliError(f"No registered model named '{args.name}'")
    if args.json:
        print_json(detail)
        return OK
    out.print(f"{escape(detail['name'])}: tenant {escape(str(detail['tenant']))}")
    ids = [v["model_id"] for v in detail["versions"]]
    table = Table("version", id_column("model id", ids), "status", "aliases", "registered")
    for v in detail["versions"]:
        here = [a for a, d in detail["aliases"].items() if d["version"] == v["version"]]
        table.add_row(str(v["version"]), escape(v["model_id"]), v["status"],
                      escape(", ".join(here)), v["registered_at"][:19])  # fmt: skip
    out.print(table)
    return OK


@command
def cmd_history(args: argparse.Namespace) -> int:
    """Every move of NAME@ALIAS, oldest first."""
    name, alias = _split(args.target)
    moves = read_model(load_settings(), args).read(alias_history, name, alias)
    if not moves:
        raise CliError(f"'{name}@{alias}' was never set")
    if args.json:
        print_json({"name": name, "alias": alias, "history": moves})
        return OK
    table = Table("#", "action", "from", "to", "by", "at", "reason")
    for m in moves:
        table.add_row(str(m["seq"]), m["action"], str(m["previous_version"] or ""),
                      str(m["version"] or ""), escape(m["by"] or ""), m["at"][:19],
                      escape(m["reason"] or ""))  # fmt: skip
    out.print(table)
    return OK
