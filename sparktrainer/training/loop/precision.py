"""Precision: autocast and a GradScaler, chosen from what the job asks and the device can do."""

from __future__ import annotations

from contextlib import AbstractContextManager, nullcontext
from dataclasses import dataclass

import torch


@dataclass
class Precision:
    """How forward/backward run: autocast dtype (None = float32) and a GradScaler for float16."""

    device_type: str
    dtype: torch.dtype | None = None
    scaler: torch.amp.GradScaler | None = None
    warning: str | None = None

    @property
    def name(self) -> str:
        """The precision actually used: float32, bfloat16 or float16."""
        return {None: "float32", torch.bfloat16: "bfloat16", torch.float16: "float16"}[self.dtype]

    def autocast(self) -> AbstractContextManager[object]:
        """The autocast context for forward passes (a no-op in float32)."""
        if self.dtype is None:
            return nullcontext()
        return torch.autocast(self.device_type, dtype=self.dtype)

    def backward(self, loss: torch.Tensor) -> None:
        """Backward, through the scaler when there is one."""
        (self.scaler.scale(loss) if self.scaler is not None else loss).backward()

    def step(self, optimizer: torch.optim.Optimizer) -> None:
        """Optimizer step (the scaler skips steps whose gradients overflowed)."""
        if self.scaler is None:
            optimizer.step()
            return
        self.scaler.step(optimizer)
        self.scaler.update()


def resolve_precision(requested: str, device: torch.device) -> Precision:
    """Map the job's precision to what the device can do, with a warning when it differs."""
    if requested == "float32":
        return Precision(device.type)
    if device.type == "cuda":
        if requested == "float16":
            return Precision("cuda", torch.float16, torch.amp.GradScaler("cuda"))
        if torch.cuda.is_bf16_supported():
            return Precision("cuda", torch.bfloat16)
        return Precision("cuda", warning="this GPU has no bfloat16: trained in float32")
    if requested == "bfloat16":
        return Precision("cpu", torch.bfloat16)
    return Precision(
        "cpu", warning="float16 needs a CUDA device (no GradScaler on the CPU): trained in float32"
    )
