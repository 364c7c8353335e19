"""Shared loop pieces: precision choice, LR schedules, metric sums, the progress clock."""

from __future__ import annotations

import pytest
import torch

from sparktrainer.contracts.jobspec import TrainingOptions
from sparktrainer.errors import TrainingError
from sparktrainer.training.loop.clock import ProgressClock
from sparktrainer.training.loop.metrics import MetricSum, check_finite
from sparktrainer.training.loop.optim import build_optimizer, build_scheduler
from sparktrainer.training.loop.precision import resolve_precision


def test_precision_on_the_cpu() -> None:
    cpu = torch.device("cpu")
    assert resolve_precision("float32", cpu).dtype is None
    bf16 = resolve_precision("bfloat16", cpu)
    assert bf16.dtype is torch.bfloat16 and bf16.scaler is None
    fp16 = resolve_precision("float16", cpu)
    assert fp16.name == "float32" and "float16 needs a CUDA device" in (fp16.warning or "")


def lrs(scheduler: str, warmup: float = 0.0, steps: int = 10) -> list[float]:
    opts = TrainingOptions(
        learning_rate=1.0, scheduler=scheduler, warmup_ratio=warmup, optimizer="sgd"
    )
    opt = build_optimizer([torch.nn.Parameter(torch.zeros(1))], opts)
    sched = build_scheduler(opt, opts, steps)
    seen = []
    for _ in range(steps):
        seen.append(opt.param_groups[0]["lr"])
        opt.step()
        sched.step()
    return seen


def test_schedules() -> None:
    assert lrs("none") == [1.0] * 10
    cosine = lrs("cosine")
    assert cosine[0] == 1.0 and cosine == sorted(cosine, reverse=True) and cosine[-1] < 0.05
    assert lrs("linear")[5] == pytest.approx(0.5)
    assert lrs("step") == pytest.approx([1.0] * 4 + [0.1] * 3 + [0.01] * 3)
    warm = lrs("cosine", warmup=0.3)
    assert warm[:3] == pytest.approx([1 / 3, 2 / 3, 1.0])
    onecycle = lrs("onecycle", warmup=0.3)
    assert max(onecycle) == pytest.approx(1.0, rel=0.1) and onecycle[0] < 0.1


def test_metric_sum_and_finite_check() -> None:
    meter = MetricSum(torch.device("cpu"))
    meter.add(torch.tensor(2.0), 4, torch.tensor(3))
    meter.add(torch.tensor(1.0), 4, torch.tensor(1))
    assert meter.means() == (1.5, 0.5)
    with pytest.raises(TrainingError, match="training loss became nan at epoch 2"):
        check_finite(float("nan"), "training loss", "epoch 2")


def test_progress_clock_rates_and_eta() -> None:
    now = [0.0]
    clock = ProgressClock(1.0, total_steps=100, start_step=0, clock=lambda: now[0])
    assert clock.due()
    now[0] = 2.0
    clock.add(64)
    rates = clock.rates(step=10)
    assert rates["samples_per_s"] == 32.0 and rates["eta_s"] == pytest.approx(18.0)
    now[0] = 2.5
    assert not clock.due()
    now[0] = 3.0
    assert clock.due()


def test_everything_frozen_is_a_clear_error() -> None:
    with pytest.raises(TrainingError, match="no trainable parameters"):
        build_optimizer([], TrainingOptions())
