"""Where a training process runs and how its randomness starts: the device and the seeds."""

from __future__ import annotations

import random

import numpy as np
import torch


def pick_device(rank: int = 0) -> torch.device:
    """``cuda:{rank}`` when CUDA is present, else the CPU."""
    if torch.cuda.is_available():
        return torch.device("cuda", rank % torch.cuda.device_count())
    return torch.device("cpu")


def seed_everything(seed: int) -> None:
    """Seed python, numpy and torch (all CUDA devices included)."""
    random.seed(seed)
    np.random.seed(seed % 2**32)
    torch.manual_seed(seed)


def peak_memory_bytes(device: torch.device) -> int | None:
    """Peak GPU memory allocated on ``device`` since the last call (None off CUDA); no sync."""
    if device.type != "cuda":
        return None
    peak = int(torch.cuda.max_memory_allocated(device))
    torch.cuda.reset_peak_memory_stats(device)
    return peak
