"""The optimizer and the learning-rate schedule a job's ``TrainingOptions`` ask for."""

from __future__ import annotations

import math
from collections.abc import Callable, Iterable

import torch
from torch import nn

from sparktrainer.contracts.jobspec import TrainingOptions
from sparktrainer.errors import TrainingError


def build_optimizer(params: Iterable[nn.Parameter], opts: TrainingOptions) -> torch.optim.Optimizer:
    """Adam, AdamW or SGD (momentum 0.9) at the job's learning rate and weight decay.

    The fused kernels are used where every parameter allows them (CPU or CUDA floats): one
    kernel for the whole update instead of a Python loop over tensors, 4-6x faster on a CPU.
    """
    params = list(params)
    if not params:
        raise TrainingError("the model has no trainable parameters (everything is frozen)")
    lr, wd = float(opts.learning_rate), float(opts.weight_decay)
    fused = all(p.device.type in ("cpu", "cuda") and p.is_floating_point() for p in params)
    if opts.optimizer == "sgd":
        return torch.optim.SGD(params, lr=lr, momentum=0.9, weight_decay=wd, fused=fused)
    cls = torch.optim.AdamW if opts.optimizer == "adamw" else torch.optim.Adam
    return cls(params, lr=lr, weight_decay=wd, fused=fused)


def lr_multiplier(kind: str, total_steps: int, warmup_steps: int) -> Callable[[int], float]:
    """LR factor per optimizer step: linear warmup, then constant, cosine, linear or step decay."""
    decay = max(1, total_steps - warmup_steps)

    def factor(step: int) -> float:
        if step < warmup_steps:
            return (step + 1) / warmup_steps
        progress = min(1.0, (step - warmup_steps) / decay)
        if kind == "cosine":
            return 0.5 * (1.0 + math.cos(math.pi * progress))
        if kind == "linear":
            return 1.0 - progress
        if kind == "step":
            return 0.1 ** min(2, math.floor(3 * progress))
        return 1.0

    return factor


def build_scheduler(
    optimizer: torch.optim.Optimizer, opts: TrainingOptions, total_steps: int
) -> torch.optim.lr_scheduler.LRScheduler:
    """The job's schedule, stepped once per optimizer step over ``total_steps``."""
    total_steps = max(1, total_steps)
    if opts.scheduler == "onecycle":
        return torch.optim.lr_scheduler.OneCycleLR(
            optimizer,
            max_lr=float(opts.learning_rate),
            total_steps=total_steps,
            pct_start=float(opts.warmup_ratio) or 0.3,
        )
    warmup = math.ceil(total_steps * float(opts.warmup_ratio))
    return torch.optim.lr_scheduler.LambdaLR(
        optimizer, lr_multiplier(opts.scheduler, total_steps, warmup)
    )
