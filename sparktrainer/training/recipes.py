"""Recipes by config kind, and ``run_recipe_job``: the one entry point the worker calls.

A recipe is ``train_*(ctx: JobContext) -> ModelRegistered`` in its framework's room
(``pytorch/recipe.py``, ``hf/recipe.py``), imported only when a job needs it (the Hugging Face
stack is heavy).
"""

from __future__ import annotations

import importlib
from collections.abc import Callable

from sparktrainer.contracts.events import ModelRegistered
from sparktrainer.errors import InvalidJobError
from sparktrainer.storage.layout import METADATA, model_key
from sparktrainer.training.job.context import JobContext

_PYTORCH = "sparktrainer.training.pytorch.recipe:train_pytorch"
RECIPES: dict[str, str] = {
    "pytorch.mlp": _PYTORCH,
    "pytorch.resnet": _PYTORCH,
    "pytorch.torchvision": _PYTORCH,
    "pytorch.registered": _PYTORCH,
    "huggingface": "sparktrainer.training.hf.recipe:train_huggingface",
}


def recipe_for(config_kind: str) -> Callable[[JobContext], ModelRegistered]:
    """Import the recipe function of a config kind."""
    try:
        module_name, _, function = RECIPES[config_kind].partition(":")
    except KeyError as e:
        raise InvalidJobError(
            [f"no recipe trains config kind '{config_kind}': known are {sorted(RECIPES)}"]
        ) from e
    fn: Callable[[JobContext], ModelRegistered] = getattr(
        importlib.import_module(module_name), function
    )
    return fn


def already_registered(ctx: JobContext) -> ModelRegistered | None:
    """The registration of this job's model when its metadata.json is already in S3."""
    key = model_key(ctx.job_id, METADATA)
    if not ctx.store.exists(key):
        return None
    metadata = ctx.store.get_json(key)
    fields = ModelRegistered.model_fields
    return ModelRegistered.model_validate({k: v for k, v in metadata.items() if k in fields})


def run_recipe_job(ctx: JobContext) -> ModelRegistered:
    """Run the job's recipe; a job whose model is already registered is not trained again."""
    done = already_registered(ctx)
    if done is not None:
        return done
    return recipe_for(ctx.job.config_kind)(ctx)
