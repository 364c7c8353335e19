"""Loss and accuracy summed on the device (no sync per step), and the check for divergence."""

from __future__ import annotations

import math

import torch

from sparktrainer.errors import TrainingError


class MetricSum:
    """Loss and accuracy summed on the device; read (one sync) only when reported."""

    def __init__(self, device: torch.device) -> None:
        self.loss_sum = torch.zeros((), device=device, dtype=torch.float64)
        self.correct = torch.zeros((), device=device, dtype=torch.int64)
        self.count = 0
        self.counts_correct = False  # no right answers added (e.g. LM training): no accuracy

    def add(self, loss: torch.Tensor, n: int, correct: torch.Tensor | None = None) -> None:
        """Add a batch's mean ``loss`` over ``n`` samples (and its count of right answers)."""
        self.loss_sum.add_(loss.detach(), alpha=n)
        if correct is not None:
            self.correct.add_(correct)
            self.counts_correct = True
        self.count += n

    def as_tensor(self) -> torch.Tensor:
        """[loss_sum, correct, count] for an all-reduce."""
        return torch.stack(
            [
                self.loss_sum,
                self.correct.double(),
                torch.tensor(float(self.count), device=self.loss_sum.device, dtype=torch.float64),
            ]
        )

    def means(self, reduced: torch.Tensor | None = None) -> tuple[float | None, float | None]:
        """(mean loss, accuracy); None when nothing was added (accuracy: no right answers)."""
        loss_sum, correct, count = (reduced if reduced is not None else self.as_tensor()).tolist()
        if count == 0:
            return None, None
        return loss_sum / count, correct / count if self.counts_correct else None


def check_finite(value: float | None, what: str, where: str) -> None:
    """A NaN or infinite loss ends the job with a reason and what to try."""
    if value is not None and not math.isfinite(value):
        raise TrainingError(
            f"{what} became {value} at {where}: training diverged; lower the learning rate, "
            "use float32 or bfloat16, or check the data for NaN/inf values"
        )
