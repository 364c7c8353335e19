"""Checks that read the object store: the model a fine-tune starts from, and its architecture.

What a kind's parent must be is declared by the kind (``contracts/kinds.py``); this module
only fetches what the store holds, once per job: the parent's metadata, its file names and
its ``config.json``.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from sparktrainer.contracts.events import ParentRef
from sparktrainer.contracts.jobspec import TrainingOptions
from sparktrainer.contracts.kinds import Architecture, JobKind, Parent
from sparktrainer.contracts.refs import ModelDirectory, ModelRef, UnknownModelError
from sparktrainer.errors import ObjectNotFound
from sparktrainer.storage.layout import METADATA, model_key, model_prefix
from sparktrainer.storage.s3 import ObjectStore
from sparktrainer.validation import messages

ARCHITECTURE_FILE = "config.json"
MAX_ARCHITECTURE_BYTES = 1 << 20  # a config.json is a few KB; anything bigger is not one


def load_parent(model_id: str, store: ObjectStore) -> Parent | None:
    """The registered model ``model_id`` as stored, or None when it is not in the registry."""
    try:
        meta = store.get_json(model_key(model_id, METADATA))
    except (ObjectNotFound, ValueError):
        return None
    prefix = model_prefix(model_id)
    files = frozenset(key[len(prefix) :] for key in store.list(prefix))
    architecture = None
    if ARCHITECTURE_FILE in files:
        architecture = _json_object(store.get_bytes(model_key(model_id, ARCHITECTURE_FILE)))
    return Parent(model_id, meta if isinstance(meta, dict) else {}, architecture, files)


@dataclass
class Resolved:
    """A fine-tune's parent reference resolved: the config naming the concrete id, and notes."""

    config: TrainingOptions
    parent_ref: ParentRef | None = None
    errors: list[str] = field(default_factory=list)
    warnings: list[str] = field(default_factory=list)


def resolve_parent(
    kind: JobKind, config: TrainingOptions, directory: ModelDirectory | None
) -> Resolved:
    """Turn ``config.model_id`` (ID, NAME:VERSION or NAME@ALIAS) into the concrete model id.

    A deleted parent is an error that says who deleted it and when; an archived one a warning.
    Without a directory only plain ids can be used (and deletion is not known).
    """
    text = kind.parent_id(config)
    if kind.parent is None or text is None:
        return Resolved(config)
    ref = ModelRef.parse(text)
    if directory is None:
        return Resolved(config) if ref.is_id else Resolved(config, errors=[_no_registry(text)])
    try:
        found = directory.resolve(ref)
    except UnknownModelError as e:
        return Resolved(config, errors=[str(e)])
    if found.status == "deleted":
        return Resolved(config, errors=[found.deleted_message() + ": fine-tune another model"])
    out = Resolved(config.model_copy(update={"model_id": found.model_id}), found.parent_ref(text))
    if found.status == "archived":
        out.warnings.append(f"Model {found.described()} is archived; it can still be fine-tuned")
    return out


def _no_registry(text: str) -> str:
    return (
        f"config.model_id '{text[:200]}' names a model by its registered name, and this "
        "validator has no registry to resolve it: give the model id"
    )


def check_parent(kind: JobKind, config: Any, store: ObjectStore) -> tuple[Parent | None, list[str]]:
    """The job's parent and why it cannot be used (no parent for kinds that start fresh)."""
    model_id = kind.parent_id(config)
    if kind.parent is None or model_id is None:
        return None, []
    parent = load_parent(model_id, store)
    if parent is None:
        return None, [messages.model_not_found(model_id)]
    return parent, kind.parent.problems(parent)


def local_architecture(model_path: str) -> Architecture | None:
    """A local model folder's config.json, when this process can read it."""
    try:
        path = Path(model_path) / ARCHITECTURE_FILE
        if path.stat().st_size > MAX_ARCHITECTURE_BYTES:
            return None
        return _json_object(path.read_bytes())
    except OSError:
        return None


def _json_object(raw: bytes) -> Architecture | None:
    if len(raw) > MAX_ARCHITECTURE_BYTES:
        return None
    try:
        doc = json.loads(raw)
    except (ValueError, RecursionError):
        return None
    return doc if isinstance(doc, dict) else None
