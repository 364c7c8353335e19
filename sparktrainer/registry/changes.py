"""Registry changes as the API and the CLI ask for them: checked against the read model first.

Each function returns the event to publish, or raises :class:`ChangeRefused` with the HTTP
status that fits and a message that says what to do. The checks read the caller's read model,
which follows the log: they keep people from mistakes, the folds stay correct without them
(another tenant's change is refused here with 403, and skipped by every reader if forged).
Who asks is an :class:`Asker`: the tenant the caller established (the API from the bearer
token, the CLI from ``SPARKTRAINER_TENANT``), never a name taken from a request.
"""

from __future__ import annotations

import sqlite3
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from sparktrainer.contracts.jobspec import check_alias, check_model_name
from sparktrainer.contracts.model_events import (
    ModelAliasRemoved,
    ModelAliasSet,
    ModelArchived,
    ModelDeleted,
)
from sparktrainer.contracts.ownership import SubjectKind, may_change, not_owner
from sparktrainer.contracts.refs import FoundModel, ModelRef, UnknownModelError
from sparktrainer.registry import owners
from sparktrainer.registry.names import alias_target
from sparktrainer.registry.resolve import resolve_ref


class ChangeRefused(Exception):
    """A change that is not made: ``status`` (403, 404, 409, 422) and a readable message."""

    def __init__(self, status: int, message: str) -> None:
        super().__init__(message)
        self.status = status


@dataclass(frozen=True)
class Asker:
    """Who asks for a change: the established tenant, and the free text they say they are."""

    tenant: str
    actor: str | None = None

    def stamp(self) -> dict[str, Any]:
        """The event fields that say who asked: ``by`` shows the tenant (and the actor)."""
        by = f"{self.tenant} ({self.actor})" if self.actor else self.tenant
        return {"tenant": self.tenant, "actor": self.actor, "by": by[:256]}


def _owned(conn: sqlite3.Connection, kind: SubjectKind, subject: str, asker: Asker) -> None:
    """403 unless ``asker``'s tenant owns the name or model (404 when nobody owns it yet)."""
    owner = owners.owner_of(conn, kind, subject)
    if owner is None:
        raise ChangeRefused(404, f"No registered {kind} '{subject[:128]}' (it follows the log)")
    if not may_change(owner, asker.tenant):
        raise ChangeRefused(403, not_owner(kind, subject, owner, asker.tenant))


def _valid(check: Callable[[str], str], value: str) -> str:
    try:
        return check(value)
    except ValueError as e:
        raise ChangeRefused(422, str(e)) from e


def resolved(conn: sqlite3.Connection, ref: str) -> FoundModel:
    """The model a reference names, known to the read model (404 when not, 422 when unreadable)."""
    try:
        parsed = ModelRef.parse(ref)
    except ValueError as e:
        msg = f"{e} (a model is named by ID, NAME:VERSION or NAME@ALIAS)"
        raise ChangeRefused(422, msg) from e
    try:
        found = resolve_ref(conn, parsed)
    except UnknownModelError as e:
        raise ChangeRefused(404, str(e)) from e
    if found.status is None:
        raise ChangeRefused(404, f"No model '{ref[:128]}' in the registry (it follows the log)")
    return found


def alias_set(
    conn: sqlite3.Connection,
    name: str,
    alias: str,
    version: int,
    asker: Asker,
    reason: str | None,
) -> ModelAliasSet:
    """Point ``name@alias`` at a registered, undeleted version (the name's owner only)."""
    _valid(check_model_name, name)
    _valid(lambda a: check_alias(a, settable=True), alias)
    if isinstance(version, bool) or not isinstance(version, int) or version < 1:
        raise ChangeRefused(422, f"version must be a positive whole number, got {version!r}"[:200])
    target = resolved(conn, f"{name}:{version}")
    _owned(conn, "name", name, asker)
    if target.status == "deleted":
        raise ChangeRefused(409, target.deleted_message() + ": point the alias at another one")
    return ModelAliasSet(name=name, alias=alias, version=version, reason=reason, **asker.stamp())


def alias_removed(
    conn: sqlite3.Connection, name: str, alias: str, asker: Asker, reason: str | None
) -> ModelAliasRemoved:
    """Remove ``name@alias`` (the name's owner only; 404 when it points nowhere)."""
    _valid(check_model_name, name)
    _valid(check_alias, alias)
    _owned(conn, "name", name, asker)
    if alias_target(conn, name, alias) is None:
        raise ChangeRefused(404, f"'{name}@{alias}' is not set")
    return ModelAliasRemoved(name=name, alias=alias, reason=reason, **asker.stamp())


def archived(conn: sqlite3.Connection, ref: str, asker: Asker, reason: str | None) -> ModelArchived:
    """Archive a model (its owner only; 409 when it is deleted; archiving twice is harmless)."""
    found = resolved(conn, ref)
    _owned(conn, "model", found.model_id, asker)
    if found.status == "deleted":
        raise ChangeRefused(409, found.deleted_message())
    return ModelArchived(model_id=found.model_id, reason=reason, **asker.stamp())


def deleted(conn: sqlite3.Connection, ref: str, asker: Asker, reason: str | None) -> ModelDeleted:
    """Delete a model (its owner only): 409 when it already is, or while an alias points at it."""
    found = resolved(conn, ref)
    _owned(conn, "model", found.model_id, asker)
    if found.status == "deleted":
        raise ChangeRefused(409, found.deleted_message())
    pointing = aliases_at(conn, found.model_id)
    if pointing:
        raise ChangeRefused(
            409,
            f"Model {found.described()} is still what {', '.join(pointing)} points at: move "
            "or remove the alias first",
        )
    return ModelDeleted(model_id=found.model_id, reason=reason, **asker.stamp())


def aliases_at(conn: sqlite3.Connection, model_id: str) -> list[str]:
    """Every ``name@alias`` pointing at the model (through the version it is of its name)."""
    rows = conn.execute(
        "SELECT a.name, a.alias FROM model_aliases a JOIN model_versions v "
        "ON v.name = a.name AND v.version = a.version WHERE v.model_id = ? ORDER BY 1, 2",
        (model_id,),
    ).fetchall()
    return [f"{r['name']}@{r['alias']}" for r in rows]
