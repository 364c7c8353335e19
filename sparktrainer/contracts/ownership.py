"""Who owns a model name, and who may change a name or a model: the one rule every decider reads.

A model name belongs to the tenant that registered its first version (the first registration of
the name in its partition's order: every version of a name is keyed by it, so that order is
total and the same in every read model). A model belongs to the tenant of the job that trained
it (``ModelRegistered.tenant``). Only a name's owner adds versions to it and sets or removes its
aliases; only a model's owner archives or deletes it (and the janitor purges it on the owner's
behalf). Reading stays company-wide: any tenant lists, downloads and fine-tunes from any model.

Pure: the validator (``register_as``), the API and the CLI (before publishing a change), the read
model's folds (``registry/owners.py``) and the janitor call these with what they know, so a
record forged onto a topic by a non-owner changes nothing wherever it is read.
"""

from __future__ import annotations

from typing import Literal

from sparktrainer.contracts.model_events import ModelAliasChange, ModelChange, ModelRetirement

SubjectKind = Literal["name", "model"]


def may_register(name_owner: str | None, tenant: str) -> bool:
    """Whether ``tenant`` may add a version to a name owned by ``name_owner`` (None: unowned)."""
    return name_owner is None or name_owner == tenant


def may_change(owner: str, tenant: str) -> bool:
    """Whether ``tenant`` may change (alias, archive, delete, purge) what ``owner`` owns."""
    return owner == tenant


def change_subject(change: ModelChange) -> tuple[SubjectKind, str]:
    """Whose ownership a change needs: an alias move its name's, a retirement its model's."""
    if isinstance(change, ModelAliasChange):
        return "name", change.name
    if isinstance(change, ModelRetirement):
        return "model", change.model_id
    raise TypeError(f"{type(change).__name__} is not a change of a name or of a model")


def name_taken(name: str, owner: str, tenant: str) -> str:
    """Why ``tenant`` may not register a version of ``name``: it is ``owner``'s."""
    return (
        f"register_as '{name[:128]}' is a model name of tenant '{owner}', not of '{tenant}': only "
        "the tenant that registered a name's first version adds versions to it; register under "
        "a name of your own (you may still fine-tune from its models)"
    )


def not_owner(kind: SubjectKind, subject: str, owner: str, tenant: str) -> str:
    """Why ``tenant`` may not change a name or a model that ``owner`` owns."""
    what = "Model name" if kind == "name" else "Model"
    changes = "set or remove its aliases" if kind == "name" else "archive or delete it"
    return (
        f"{what} '{subject[:128]}' belongs to tenant '{owner}', not to '{tenant}': only its "
        f"owner may {changes} (reading and fine-tuning from it stay open to every tenant)"
    )
