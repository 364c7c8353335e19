"""What the guide test needs beside its table: documented overrides, weights placed, checks.

The overrides are the only changes made to a guide example before it runs (the README's
"Tests" section lists them):
- ``SHRINK``: one epoch on 128 samples; image models on 3x16x16 inputs; text at 16 tokens;
- a placeholder ``model_id`` becomes the id of the model an earlier example registered;
- a partial example (only a ``config``) is merged into the job of its base example.
"""

from __future__ import annotations

import contextlib
import copy
import io
import shutil
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import torch

from sparktrainer.storage.layout import model_key
from sparktrainer.storage.s3 import ObjectStore
from sparktrainer.training.pytorch.model_io import ModelSpec
from sparktrainer.training.pytorch.pretrained import MANIFEST, file_sha256

SHRINK: dict[str, Any] = {"epochs": 1, "data": {"num_samples": 128}}
SHRINK_IMAGES: dict[str, Any] = {"input_shape": [3, 16, 16]}
SHRINK_TEXT: dict[str, Any] = {"max_length": 16}
IMAGE_KINDS = ("resnet", "torchvision")


def merged(base: dict[str, Any], partial: dict[str, Any]) -> dict[str, Any]:
    """``base`` with ``partial`` laid over it, nested objects merged key by key."""
    out = copy.deepcopy(base)
    for key, value in partial.items():
        if isinstance(value, dict) and isinstance(out.get(key), dict):
            out[key] = merged(out[key], value)
        else:
            out[key] = copy.deepcopy(value)
    return out


def shrunk(job: dict[str, Any]) -> dict[str, Any]:
    """The job with the documented overrides: fewer epochs and samples, small inputs."""
    config = job["config"]
    extra = dict(SHRINK)
    if job["framework"] == "huggingface":
        extra |= SHRINK_TEXT
    elif config.get("architecture") in IMAGE_KINDS or config.get("model_source") in IMAGE_KINDS:
        extra |= SHRINK_IMAGES
    return {**job, "config": merged(config, extra)}


# -- weights placed where a trainer without internet reads them ----------------------------


@contextlib.contextmanager
def in_hub_cache(hf_home: Path, name: str, folder: Path) -> Iterator[Path]:
    """``folder`` (a saved model) in the Hugging Face cache as ``name``, as `hf download`
    leaves it (refs/main -> a snapshot); removed afterwards."""
    repo = hf_home / "hub" / f"models--{name.replace('/', '--')}"
    revision = "0" * 40
    shutil.copytree(folder, repo / "snapshots" / revision)
    (repo / "refs").mkdir()
    (repo / "refs" / "main").write_text(revision)
    try:
        yield repo
    finally:
        shutil.rmtree(repo)


@contextlib.contextmanager
def in_weights_dir(weights_dir: Path, name: str) -> Iterator[dict[str, torch.Tensor]]:
    """ImageNet-shaped torchvision weights for ``name`` (seeded, not trained) listed in the
    operator's folder with their sha256; the folder is emptied afterwards."""
    import torchvision

    torch.manual_seed(1)
    state = torchvision.models.get_model(name, num_classes=1000).state_dict()
    path = weights_dir / f"{name}.pth"
    torch.save(state, path)
    (weights_dir / MANIFEST).write_text(
        f'{{"{name}": {{"file": "{path.name}", "sha256": "{file_sha256(path)}"}}}}'
    )
    try:
        yield state
    finally:
        path.unlink()
        (weights_dir / MANIFEST).unlink()


# -- checks on what a job left in S3 ---------------------------------------------------------


def stored_weights(store: ObjectStore, model_id: str) -> dict[str, torch.Tensor]:
    """A registered PyTorch model's weights, read weights-only."""
    payload = torch.load(io.BytesIO(store.get_bytes(model_key(model_id, "model.pth"))),
                         weights_only=True)  # fmt: skip
    return payload["model_state_dict"]


def assert_started_from(store: ObjectStore, child_id: str, parent_id: str) -> None:
    """The child began from its parent's weights: after its one short epoch every shared
    tensor is still within a tenth of the gap between the parent and a fresh initialization."""
    parent, child = stored_weights(store, parent_id), stored_weights(store, child_id)
    spec = ModelSpec.from_config_json(store.get_json(model_key(parent_id, "config.json")), "")
    torch.manual_seed(12345)
    fresh = spec.build().state_dict()
    shared = [k for k, v in child.items() if k in parent and v.shape == parent[k].shape]
    matrices = [k for k in shared if child[k].dim() >= 2]
    assert matrices, f"{child_id} shares no weight matrix with {parent_id}"
    moved = max(float((child[k] - parent[k]).abs().max()) for k in shared)
    gap = min(float((fresh[k] - parent[k]).abs().mean()) for k in matrices)
    assert moved < 0.1 * gap, f"{child_id} moved {moved:.2e} from {parent_id} (fresh: {gap:.2e})"
