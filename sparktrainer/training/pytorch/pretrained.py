"""Pretrained torchvision weights from an operator's folder, each file checked by its sha256.

Trainers without internet (or that must not fetch) get ImageNet weights from
``SPARKTRAINER_PRETRAINED_WEIGHTS_DIR``: a folder with ``manifest.json``

    {"resnet50": {"file": "resnet50.pth", "sha256": "<64 hex digits>"}, ...}

and the files it names (torchvision state dicts, as ``torch.save(model.state_dict())`` writes
them). A file whose sha256 differs from its manifest entry is refused; it is loaded
weights-only. A model the manifest does not list falls back to torchvision's own cache
(``$TORCH_HOME/hub/checkpoints``): that file's sha256 must start with the hash prefix its
torchvision name carries, checked on every load (not only on download), and it loads
weights-only too.
"""

from __future__ import annotations

import hashlib
import json
import re
from pathlib import Path

import torch

from sparktrainer.errors import ModelUnavailableError, TrainingError, UnsafeArtifactError
from sparktrainer.training.checkpoint import safe_load

MANIFEST = "manifest.json"
_SHA256 = re.compile(r"[0-9a-f]{64}")


def file_sha256(path: Path) -> str:
    """The hex sha256 of a file, read in 1 MiB chunks."""
    digest = hashlib.sha256()
    with path.open("rb") as f:
        for chunk in iter(lambda: f.read(2**20), b""):
            digest.update(chunk)
    return digest.hexdigest()


def _entry(weights_dir: Path, model_name: str) -> tuple[Path, str] | None:
    manifest = weights_dir / MANIFEST
    if not manifest.is_file():
        return None
    try:
        entries = json.loads(manifest.read_text())
    except (OSError, ValueError) as e:
        raise TrainingError(f"{manifest} is not readable JSON ({e}): fix or remove it") from e
    entry = entries.get(model_name) if isinstance(entries, dict) else None
    if entry is None:
        return None
    file, sha = (entry.get("file"), entry.get("sha256")) if isinstance(entry, dict) else (0, 0)
    if not isinstance(file, str) or not isinstance(sha, str) or not _SHA256.fullmatch(sha):
        raise TrainingError(
            f"{manifest} entry '{model_name}' needs 'file' and 'sha256' (64 lowercase hex digits)"
        )
    path = (weights_dir / file).resolve()
    if weights_dir.resolve() not in path.parents:
        raise TrainingError(f"{manifest} entry '{model_name}' points outside {weights_dir}")
    return path, sha


def local_state_dict(weights_dir: Path, model_name: str) -> dict[str, torch.Tensor] | None:
    """The manifest's weights for ``model_name`` (sha256-checked), or None when not listed."""
    found = _entry(weights_dir, model_name)
    if found is None:
        return None
    path, expected = found
    if not path.is_file():
        raise ModelUnavailableError(f"pretrained weights for {model_name} missing: no file {path}")
    actual = file_sha256(path)
    if actual != expected:
        raise TrainingError(
            f"pretrained weights {path} have sha256 {actual[:16]}..., the manifest says "
            f"{expected[:16]}...: the file changed or the manifest is stale; refusing them"
        )
    try:
        state = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as e:
        raise TrainingError(f"pretrained weights {path} do not load weights-only: {e}") from e
    if not isinstance(state, dict) or not all(isinstance(v, torch.Tensor) for v in state.values()):
        raise TrainingError(f"pretrained weights {path} are not a state dict of tensors")
    return state


def cached_state_dict(model_name: str, url: str) -> dict[str, torch.Tensor]:
    """torchvision's weights for ``url`` from its hub cache (downloaded when absent), refused
    unless their sha256 starts with the prefix in the file's name; loaded weights-only."""
    import torch.hub

    filename = url.rsplit("/", 1)[-1]
    path = Path(torch.hub.get_dir()) / "checkpoints" / filename
    found = torch.hub.HASH_REGEX.search(filename)
    prefix = found.group(1) if found else ""
    if not path.is_file():
        try:
            path.parent.mkdir(parents=True, exist_ok=True)
            torch.hub.download_url_to_file(url, str(path), prefix or None, progress=False)
        except Exception as e:
            raise TrainingError(
                f"cannot get pretrained weights for torchvision {model_name} "
                f"({type(e).__name__}: {str(e)[:200]}): set pretrained false, or place the "
                f"weights file at {path} ($TORCH_HOME/hub/checkpoints/{filename}), or list it "
                f"in {MANIFEST} of SPARKTRAINER_PRETRAINED_WEIGHTS_DIR with its sha256"
            ) from e
    digest = file_sha256(path)
    if not prefix or not digest.startswith(prefix):
        raise UnsafeArtifactError(
            f"pretrained weights {path} refused: their sha256 {digest[:16]}... does not start "
            f"with the '{prefix}' their name promises (replace the file with torchvision's own)"
        )
    state = safe_load(path, f"pretrained weights {filename}")
    if not isinstance(state, dict):
        raise UnsafeArtifactError(f"pretrained weights {filename} hold no state dict")
    return state
