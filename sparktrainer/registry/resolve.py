"""Resolving a model reference (ID, NAME:VERSION, NAME@ALIAS) against the read model."""

from __future__ import annotations

import sqlite3

from sparktrainer.contracts.refs import FoundModel, ModelRef, UnknownModelError
from sparktrainer.registry.ids import whole_id
from sparktrainer.registry.names import alias_target, latest_version, version_model
from sparktrainer.registry.retirement import retirements_of


def resolve_ref(conn: sqlite3.Connection, ref: ModelRef) -> FoundModel:
    """The model ``ref`` names and its status; UnknownModelError says what is missing.

    A plain id the read model does not know resolves to itself with status None (the object
    store may still hold it); a name, a version or an alias must be known here.
    """
    if ref.model_id is not None:
        return _described(conn, whole_id(conn, "model", ref.model_id), None)
    assert ref.name is not None
    version = ref.version or _aliased(conn, ref.name, ref.alias or "")
    model_id = version_model(conn, ref.name, version)
    if model_id is None:
        _unknown_name(conn, ref.name)
        versions = _versions(conn, ref.name)
        if ref.alias:
            raise UnknownModelError(
                f"Alias '{ref.text}' points at version {version}, which is not registered "
                f"(versions of '{ref.name}': {versions})"
            )
        raise UnknownModelError(
            f"Model '{ref.name}' has no version {version} (its versions: {versions})"
        )
    return _described(conn, model_id, ref.alias)


def _aliased(conn: sqlite3.Connection, name: str, alias: str) -> int:
    version = latest_version(conn, name) if alias == "latest" else alias_target(conn, name, alias)
    if version is None:
        _unknown_name(conn, name)
        aliases = [r[0] for r in conn.execute(
            "SELECT alias FROM model_aliases WHERE name = ? ORDER BY alias", (name,)
        )]  # fmt: skip
        known = f"its aliases: {', '.join(aliases)}" if aliases else "it has no aliases"
        raise UnknownModelError(
            f"Model '{name}' has no alias '{alias}' ({known}); set one with "
            f"`sparktrainer models alias {name}@{alias} VERSION`"
        )
    return version


def _unknown_name(conn: sqlite3.Connection, name: str) -> None:
    if conn.execute("SELECT 1 FROM model_versions WHERE name = ?", (name,)).fetchone() is None:
        raise UnknownModelError(
            f"No registered model named '{name}' (a job's \"register_as\" creates one; the "
            "registry follows the log, so a model registered a moment ago may not be there yet)"
        )


def _versions(conn: sqlite3.Connection, name: str) -> str:
    row = conn.execute(
        "SELECT min(version), max(version) FROM model_versions WHERE name = ?", (name,)
    ).fetchone()
    return f"{row[0]}-{row[1]}" if row[0] != row[1] else str(row[0])


def _described(conn: sqlite3.Connection, model_id: str, alias: str | None) -> FoundModel:
    row = conn.execute(
        "SELECT registered_name, version, status FROM models WHERE model_id = ?", (model_id,)
    ).fetchone()
    retired = retirements_of(conn, [model_id]).get(model_id, {})
    status = retired.get("status") or (row["status"] if row else None)
    deleted = status == "deleted"
    return FoundModel(
        model_id=model_id,
        name=row["registered_name"] if row else None,
        version=row["version"] if row else None,
        alias=alias,
        status=status,
        retired_by=retired.get("deleted_by" if deleted else "archived_by"),
        retired_at=retired.get("deleted_at" if deleted else "archived_at"),
        reason=retired.get("delete_reason" if deleted else "archive_reason"),
    )
