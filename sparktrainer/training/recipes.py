"""Recipes by config kind, and ``run_recipe_job``: the one entry point the worker calls.

A recipe is ``train_*(ctx: JobContext) -> ModelRegistered`` in its framework's room
(``pytorch/recipe.py``, ``hf/recipe.py``), imported only when a job needs it (the Hugging Face
stack is heavy).
"""

from __future__ import annotations

import importlib
from collections.abc import Callable

from sparktrainer.contracts.events import ModelRegistered
from sparktrainer.contracts.kinds import KINDS, kind_of
from sparktrainer.errors import InvalidJobError
from sparktrainer.storage.layout import METADATA, model_key
from sparktrainer.training.job.context import JobContext


def recipe_for(config_kind: str) -> Callable[[JobContext], ModelRegistered]:
    """Import the recipe function of a config kind (the kind registry names it)."""
    try:
        module_name, _, function = kind_of(config_kind).recipe.partition(":")
    except KeyError as e:
        raise InvalidJobError(
            [f"no recipe trains config kind '{config_kind}': known are {sorted(KINDS)}"]
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
