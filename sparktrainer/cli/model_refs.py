"""Finding the model a reference (ID, NAME:VERSION, NAME@ALIAS) names, for the CLI commands."""

from __future__ import annotations

from typing import Any

from sparktrainer.cli.common import CliError
from sparktrainer.registry.changes import ChangeRefused, resolved
from sparktrainer.registry.models import get_model
from sparktrainer.registry.store import RegistryStore


def found(registry: RegistryStore, ref: str) -> dict[str, Any]:
    """The model a reference names in the read model (exit 2 when it names none)."""
    try:
        model_id = registry.read(resolved, ref).model_id
    except ChangeRefused as e:
        raise CliError(str(e)) from e
    model = registry.read(get_model, model_id)
    if model is None:
        raise CliError(f"No model '{ref}' in the registry read model")
    return model
