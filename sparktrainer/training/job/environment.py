"""``env.json``: the environment a model was trained in (python, packages, torch, CUDA)."""

from __future__ import annotations

import platform
import sys
from importlib import metadata as importlib_metadata
from typing import Any

PACKAGES = ("torch", "torchvision", "transformers", "peft", "safetensors", "numpy", "sparktrainer")


def environment_snapshot() -> dict[str, Any]:
    """``env.json``: python, platform, key package versions, torch and CUDA details."""
    packages = {}
    for name in PACKAGES:
        try:
            packages[name] = importlib_metadata.version(name)
        except importlib_metadata.PackageNotFoundError:
            continue
    env: dict[str, Any] = {
        "python": sys.version.split()[0],
        "platform": platform.platform(),
        "packages": packages,
    }
    try:
        import torch

        env["torch"] = torch.__version__
        env["cuda_available"] = torch.cuda.is_available()
        env["cuda_version"] = torch.version.cuda
        if torch.cuda.is_available():
            env["cuda_devices"] = [
                torch.cuda.get_device_name(i) for i in range(torch.cuda.device_count())
            ]
    except ImportError:
        pass
    return env
