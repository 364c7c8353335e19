"""Finding and loading a transformers model: hub name, local folder or registered model id.

Every source ends as a local folder (the hub's through its cache under ``HF_HOME``, a
registered model's downloaded from ``models/{id}/``), and the model and tokenizer load from
that folder. Registered weights are untrusted input: they load only from safetensors.
"""

from __future__ import annotations

import json
import tempfile
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import structlog
import torch

from sparktrainer.contracts.access import Access
from sparktrainer.contracts.jobspec import HuggingFaceConfig, check_relative_key
from sparktrainer.errors import (
    InvalidJobError,
    ModelUnavailableError,
    ObjectNotFound,
    TrainingError,
)
from sparktrainer.storage.layout import METADATA, model_prefix
from sparktrainer.storage.s3 import ObjectStore
from sparktrainer.training.checkpoint import artifact_hashes, check_sha256

log = structlog.get_logger(__name__)

_CONFIG_FILES = ["*.json", "*.txt", "*.model", "*.tiktoken", "tokenizer*", "merges.txt", "vocab*"]
ADAPTERS_DIR = "adapters"


@dataclass
class ModelSource:
    """A model's local folder, what the job called it, and its registry parent if any."""

    directory: Path
    name: str
    parent_id: str | None = None
    parent: dict[str, Any] | None = None

    @property
    def lineage(self) -> list[str]:
        """Ancestors of a model trained from this source, nearest first."""
        if self.parent_id is None:
            return []
        return [self.parent_id, *(self.parent or {}).get("lineage", [])]


def resolve_source(
    cfg: HuggingFaceConfig,
    job_type: str,
    store: ObjectStore | None,
    workdir: Path,
    *,
    access: Access | None = None,
    admit: Callable[[Path], None] = lambda folder: None,
) -> ModelSource:
    """Bring the job's base model to a local folder (weights only when fine-tuning).

    ``admit`` sees the folder once its config.json is there, before a hub model's weights are
    fetched (it raises to refuse the job). A local folder must lie under ``access``'s roots.
    """
    if cfg.model_source == "huggingface":
        assert cfg.model_name is not None
        folder = fetch_from_hub(cfg.model_name, weights=False)
        admit(folder)
        if job_type == "finetune":
            folder = fetch_from_hub(cfg.model_name, weights=True)
        return ModelSource(folder, cfg.model_name)
    if cfg.model_source == "local":
        assert cfg.model_path is not None
        problem = (access or Access()).local_path_problem(cfg.model_path)
        if problem:
            raise InvalidJobError([problem])
        path = Path(cfg.model_path).expanduser().resolve()
        if not (path / "config.json").is_file():
            raise ModelUnavailableError(
                f"model_path '{cfg.model_path}' is not a transformers model folder on this "
                "trainer (no config.json there); save one with save_pretrained or use "
                "model_source 'model_id'"
            )
        admit(path)
        return ModelSource(path, cfg.model_path)
    assert cfg.model_id is not None
    if store is None:
        raise TrainingError(f"model_id '{cfg.model_id}' needs the object store")
    target = Path(tempfile.mkdtemp(prefix=f"base-{cfg.model_id}-", dir=workdir))
    parent = download_registered(store, cfg.model_id, target)
    admit(target)
    return ModelSource(target, cfg.model_id, cfg.model_id, parent)


def fetch_from_hub(name: str, *, weights: bool) -> Path:
    """The hub model's snapshot folder in the HF cache; TrainingError that says why not."""
    from huggingface_hub import errors as hub_errors
    from huggingface_hub import snapshot_download

    quiet_progress_bars()
    patterns = _CONFIG_FILES + (["*.safetensors"] if weights else [])
    try:
        folder = Path(snapshot_download(name, allow_patterns=patterns))
        if weights and not any(folder.glob("*.safetensors")):
            # Older repos ship only pytorch_model.bin; transformers loads it with weights_only.
            folder = Path(snapshot_download(name, allow_patterns=[*patterns, "pytorch_model*.bin"]))
    except (
        hub_errors.RepositoryNotFoundError,
        hub_errors.GatedRepoError,
        hub_errors.RevisionNotFoundError,
        hub_errors.HFValidationError,
    ) as e:
        raise ModelUnavailableError(
            f"model '{name}' is not on the Hugging Face hub or is not accessible "
            f"({type(e).__name__}); check model_name"
        ) from e
    except Exception as e:
        if hub_unreachable(e):
            raise hub_unreachable_error(name, e) from e
        raise TrainingError(f"could not fetch '{name}' from the Hugging Face hub: {e}"[:500]) from e
    return folder


def hub_unreachable(error: BaseException) -> bool:
    """Whether an exception chain says the hub could not be reached (offline or network)."""
    from huggingface_hub import errors as hub_errors

    seen: BaseException | None = error
    while seen is not None:
        if isinstance(seen, hub_errors.LocalEntryNotFoundError | hub_errors.OfflineModeIsEnabled):
            return True
        if (
            isinstance(seen, ConnectionError | TimeoutError)
            or "ConnectError" in type(seen).__name__
        ):
            return True
        seen = seen.__cause__ or seen.__context__
    return False


def hub_unreachable_error(name: str, error: BaseException) -> ModelUnavailableError:
    """The error for a hub model that is neither reachable nor cached."""
    from huggingface_hub import constants

    offline = constants.is_offline_mode()
    why = "offline mode is on (HF_HUB_OFFLINE=1)" if offline else "network error"
    err = ModelUnavailableError(
        f"could not load model '{name}': the Hugging Face hub could not be reached ({why}) and "
        f"the model is not in the local cache {constants.HF_HUB_CACHE} (HF_HOME). Download it "
        "into that cache on the trainer, or use model_source 'local' with model_path, or "
        "model_source 'model_id' for a registered model"
    )
    err.retriable = not offline  # a network blip may pass; offline mode will not
    return err


def download_registered(store: ObjectStore, model_id: str, target: Path) -> dict[str, Any]:
    """Download ``models/{id}/`` into ``target``; returns its metadata (checked to be HF).

    The files are the ones metadata.json lists, each verified against its recorded sha256.
    """
    prefix = model_prefix(model_id)
    try:
        meta = store.get_json(prefix + METADATA)
    except ObjectNotFound as e:
        raise ModelUnavailableError(
            f"model '{model_id}' is not registered (no {prefix}{METADATA}); "
            "list models to find its id"
        ) from e
    if meta.get("framework") != "huggingface":
        raise TrainingError(
            f"model '{model_id}' is a {meta.get('framework')} model; "
            "fine-tune it with that framework"
        )
    # Only the files its registration recorded, each checked against its recorded sha256.
    for rel, sha256 in artifact_hashes(meta).items():
        dest = target / check_relative_key(rel)
        dest.parent.mkdir(parents=True, exist_ok=True)
        store.get_file(prefix + rel, dest)
        check_sha256(dest, sha256, f"{rel} of model '{model_id}'")
    if not (target / "model.safetensors").is_file():
        raise TrainingError(f"model '{model_id}' has no model.safetensors; it cannot be fine-tuned")
    return dict(meta)


def quiet_progress_bars() -> None:
    """No per-file progress bars from transformers / the hub in the worker's logs."""
    from huggingface_hub.utils import disable_progress_bars
    from transformers.utils import logging as hf_logging

    disable_progress_bars()
    hf_logging.disable_progress_bar()


def _model_class(task: str) -> Any:
    from transformers import AutoModelForCausalLM, AutoModelForSequenceClassification

    return AutoModelForSequenceClassification if task == "classification" else AutoModelForCausalLM


def load_tokenizer(folder: Path, name: str) -> Any:
    """The folder's tokenizer, with a pad token (GPT-2 style ones get eos)."""
    from transformers import AutoTokenizer

    try:
        tokenizer = AutoTokenizer.from_pretrained(folder)
    except (OSError, ValueError, TypeError) as e:
        raise TrainingError(f"model '{name}' has no usable tokenizer in {folder}: {e}"[:500]) from e
    if tokenizer.pad_token is None:
        if tokenizer.eos_token is None:
            raise TrainingError(f"tokenizer of '{name}' has neither a pad nor an eos token")
        tokenizer.pad_token = tokenizer.eos_token
    return tokenizer


def load_model(
    source: ModelSource,
    cfg: HuggingFaceConfig,
    job_type: str,
    tokenizer: Any,
    *,
    safetensors_only: bool,
) -> Any:
    """The task's model: pretrained weights to fine-tune, or fresh ones (seeded) to train."""
    from transformers import AutoConfig

    quiet_progress_bars()
    kwargs: dict[str, Any] = {}
    if cfg.task_type == "classification":
        kwargs["num_labels"] = cfg.num_classes
    cls = _model_class(cfg.task_type)
    try:
        if job_type == "train":
            config = AutoConfig.from_pretrained(source.directory, **kwargs)
            torch.manual_seed(cfg.seed)
            model = cls.from_config(config)
        else:
            model = cls.from_pretrained(
                source.directory,
                ignore_mismatched_sizes=cfg.task_type == "classification",
                use_safetensors=True if safetensors_only else None,
                **kwargs,
            )
    except (OSError, ValueError, KeyError) as e:
        raise TrainingError(
            f"could not load model '{source.name}' for {cfg.task_type}: {e}"[:600]
        ) from e
    if model.config.pad_token_id is None:
        model.config.pad_token_id = tokenizer.pad_token_id
    return model


def read_config(folder: Path) -> dict[str, Any]:
    """A model folder's parsed config.json (empty when unreadable)."""
    try:
        return dict(json.loads((folder / "config.json").read_text()))
    except (OSError, ValueError):
        return {}
