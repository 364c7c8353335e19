"""Stopping together: under DDP every rank votes each step, so all stop at the same one."""

from __future__ import annotations

import torch
import torch.distributed as dist

from sparktrainer.errors import SparkTrainerError
from sparktrainer.training.loop.plan import Hooks, Rank


class StopRequested(SparkTrainerError):
    """Another rank (or the launcher) asked every rank to stop at this step."""


def check_stop_together(hooks: Hooks, where: Rank) -> None:
    """``hooks.check_stop()``; under DDP every rank votes, so all stop at the same step.

    A rank that stopped alone would leave the others waiting in a collective forever.
    """
    if where.control is None:
        hooks.check_stop()
        return
    pending: SparkTrainerError | None = None
    try:
        hooks.check_stop()
    except SparkTrainerError as e:
        pending = e
    vote = torch.tensor([1 if pending else 0])
    dist.all_reduce(vote, op=dist.ReduceOp.MAX, group=where.control)
    if vote.item():
        raise pending or StopRequested("another rank stopped")
