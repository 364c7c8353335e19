"""Resume state as a dataclass, and the only way SparkTrainer reads a torch file.

A stored file is untrusted input: ``safe_load`` uses ``torch.load(weights_only=True)``, so
tensors and plain containers load and a file carrying a pickled object is refused before
anything in it runs. RNG states are stored as tensors and lists for the same reason.
"""

from __future__ import annotations

import dataclasses
import pickle
import random
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import torch

from sparktrainer.errors import TrainingError, UnsafeArtifactError
from sparktrainer.storage.s3 import sha256_file

RESUME_FORMAT = "sparktrainer.resume.v1"


def safe_load(path: Path, what: str) -> Any:
    """``torch.load(weights_only=True)`` on the CPU; a pickle payload is an UnsafeArtifactError."""
    try:
        return torch.load(path, map_location="cpu", weights_only=True)
    except pickle.UnpicklingError as e:
        raise UnsafeArtifactError(
            f"{what} refused: it is not a weights-only torch file (it may carry a pickled "
            f"Python object, which is never loaded): {str(e).splitlines()[-1][:200]}"
        ) from e
    except (RuntimeError, EOFError, OSError) as e:
        raise TrainingError(f"{what} is not a readable torch file: {str(e)[:200]}") from e


def check_sha256(path: Path, expected: str | None, what: str) -> None:
    """Refuse a downloaded file whose sha256 is not the one recorded when it was uploaded."""
    if not expected:
        raise UnsafeArtifactError(
            f"{what} refused: no sha256 was recorded for it, so it cannot be verified"
        )
    found = sha256_file(path)
    if found != expected:
        raise UnsafeArtifactError(
            f"{what} refused: its sha256 {found[:16]}... is not the {str(expected)[:16]}... "
            "recorded when it was uploaded (the file was changed or corrupted)"
        )


def artifact_hashes(metadata: Any) -> dict[str, str]:
    """The sha256 of each file of a registered model, as its metadata.json recorded them."""
    artifacts = metadata.get("artifacts") if isinstance(metadata, dict) else None
    out: dict[str, str] = {}
    for item in artifacts if isinstance(artifacts, list) else []:
        if isinstance(item, dict) and isinstance(item.get("path"), str):
            out[item["path"]] = str(item.get("sha256") or "")
    return out


def capture_rng() -> dict[str, Any]:
    """Every RNG the loop touches, as tensors and lists (weights_only-loadable)."""
    kind, keys, pos, has_gauss, cached = np.random.get_state(legacy=True)  # type: ignore[misc]
    assert isinstance(keys, np.ndarray)
    version, py_state, gauss_next = random.getstate()
    return {
        "torch": torch.get_rng_state(),
        "cuda": torch.cuda.get_rng_state_all() if torch.cuda.is_available() else [],
        "numpy": [kind, keys.tolist(), int(pos), int(has_gauss), float(cached)],
        "python": [version, list(py_state), gauss_next],
    }


def restore_rng(state: dict[str, Any]) -> None:
    """Put back what ``capture_rng`` took (CUDA states only where CUDA is present)."""
    torch.set_rng_state(state["torch"])
    if state["cuda"] and torch.cuda.is_available():
        torch.cuda.set_rng_state_all(state["cuda"][: torch.cuda.device_count()])
    kind, keys, pos, has_gauss, cached = state["numpy"]
    np.random.set_state((kind, np.array(keys, dtype=np.uint32), pos, has_gauss, cached))
    version, py_state, gauss_next = state["python"]
    random.setstate((version, tuple(py_state), gauss_next))


@dataclass
class ResumeState:
    """Everything to continue a run exactly where it stopped.

    ``epoch`` counts completed epochs; ``batch_in_epoch`` the micro-batches of the next
    epoch already trained (0 at an epoch boundary); ``step`` the optimizer steps so far.
    """

    epoch: int
    step: int
    model: dict[str, torch.Tensor]
    optimizer: dict[str, Any]
    batch_in_epoch: int = 0
    scheduler: dict[str, Any] | None = None
    scaler: dict[str, Any] | None = None
    rng: dict[str, Any] = field(default_factory=capture_rng)
    best_val_loss: float | None = None
    best_epoch: int | None = None
    best_model: dict[str, torch.Tensor] | None = None
    history: list[dict[str, float]] = field(default_factory=list)

    def save(self, path: Path) -> Path:
        """Write the state with ``torch.save`` (tensors and plain values only)."""
        payload = {"format": RESUME_FORMAT}
        payload.update({f.name: getattr(self, f.name) for f in dataclasses.fields(self)})
        torch.save(payload, path)
        return path

    @classmethod
    def load(cls, path: Path) -> ResumeState:
        """Read a state written by ``save``; refuses pickles and foreign files."""
        payload = safe_load(path, f"checkpoint {path.name}")
        if not isinstance(payload, dict) or payload.get("format") != RESUME_FORMAT:
            raise TrainingError(f"checkpoint {path.name} is not a {RESUME_FORMAT} file")
        names = {f.name for f in dataclasses.fields(cls)}
        return cls(**{k: v for k, v in payload.items() if k in names})
