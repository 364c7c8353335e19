"""Weight comparisons the fine-tune tests share (frozen layers, heads)."""

from __future__ import annotations

import torch


def assert_only_head_trained(
    before: dict[str, torch.Tensor], after: dict[str, torch.Tensor], head: str
) -> None:
    """Every tensor outside ``head`` is exactly as it was; the head changed."""
    for name, value in after.items():
        if not name.startswith(head):
            assert torch.equal(before[name], value), f"{name} changed although frozen"
    head_keys = [k for k in after if k.startswith(head)]
    assert head_keys and any(
        k not in before or before[k].shape != after[k].shape or not torch.equal(before[k], after[k])
        for k in head_keys
    ), f"the head {head} did not train"
