"""Resource caps (settings): every size a job asks for and what it is estimated to cost.

A job beyond any cap is rejected before anything is allocated, with a message that names the
field, the value or estimate, the limit and the setting that holds it. The trainer runs the
same checks again on every job it takes (anyone can write jobs.validated), and checks the
estimate against its own devices and memory budget (:func:`check_capacity`); for a hub model
it estimates the job itself, once the model's config.json is in (the validator cannot).
"""

from __future__ import annotations

from collections import deque
from dataclasses import dataclass
from typing import Any

from sparktrainer.contracts.estimates import ResourceEstimate
from sparktrainer.contracts.jobspec import JobRequest
from sparktrainer.contracts.kinds import JobKind, request_asks
from sparktrainer.contracts.sweeps import SweepConfig, sweep_asks
from sparktrainer.settings import Limits

ENV_PREFIX = "SPARKTRAINER_MAX_"


def show(value: float) -> str:
    """A number as a person reads it (huge integers shortened)."""
    if isinstance(value, int) and abs(value) >= 10**15:
        return f"{value:.3e}" if abs(value) < 10**300 else f"(a {len(str(value))}-digit number)"
    return f"{value:g}"


def show_bytes(n: int) -> str:
    """Bytes in binary units: ``1.5 GiB`` (past a thousand PiB, as a number of bytes)."""
    units = ("B", "KiB", "MiB", "GiB", "TiB", "PiB")
    if n >= 1000 * 1024**5:
        return f"{show(n)} bytes"
    power = min(len(units) - 1, max(0, n.bit_length() - 1) // 10)
    return f"{n} B" if power == 0 else f"{n / 1024**power:.1f} {units[power]}"


def setting(cap: str) -> str:
    """The environment variable that sets a cap."""
    return ENV_PREFIX + cap.upper()


def over(field: str, value: float, cap: str, limits: Limits) -> str | None:
    """The message for ``value`` above the cap named ``cap``, or None."""
    limit = getattr(limits, cap)
    if value > limit:
        return (
            f"{field} {show(value)} is above this deployment's limit of {show(limit)} "
            f"({setting(cap)})"
        )
    return None


def check_asks(kind: JobKind, config: Any, limits: Limits) -> list[str]:
    """Every size the config asks for beyond its cap."""
    return [m for field, v, cap in kind.all_asks(config) if (m := over(field, v, cap, limits))]


def check_request(req: JobRequest, limits: Limits) -> list[str]:
    """The resources (and trial number) a job asks for beyond their caps."""
    return [m for field, v, cap in request_asks(req) if (m := over(field, v, cap, limits))]


def check_sweep(config: SweepConfig, limits: Limits) -> list[str]:
    """Every size a sweep asks for beyond its cap (its grid's points included)."""
    errors = [m for field, v, cap in sweep_asks(config) if (m := over(field, v, cap, limits))]
    if config.sampler == "grid":
        cap = limits.sweep_grid_points
        if config.grid_size(cap) > cap:
            errors.append(
                f"config.space has more than this deployment's limit of {cap} grid points "
                f"({setting('sweep_grid_points')})"
            )
    return errors


def check_estimate(estimate: ResourceEstimate, config: Any, limits: Limits) -> list[str]:
    """The estimated parameters, memory and data against their caps."""
    errors = []
    if m := over("estimated model parameters", estimate.parameters, "model_parameters", limits):
        errors.append(m)
    if estimate.data_bytes > limits.data_bytes:
        errors.append(
            f"config.data: the training data is estimated at {show_bytes(estimate.data_bytes)} "
            f"in memory, above this deployment's limit of {show_bytes(limits.data_bytes)} "
            f"({setting('data_bytes')}): lower data.num_samples or the input size"
        )
    if estimate.memory_bytes > limits.job_memory_bytes:
        errors.append(_memory_message(estimate, config, limits))
    return errors


def _memory_message(e: ResourceEstimate, config: Any, limits: Limits) -> str:
    parts = (
        f"weights {show_bytes(2 * e.weight_bytes)} (with the best-weights copy), gradients "
        f"{show_bytes(e.gradient_bytes)}, optimizer {show_bytes(e.optimizer_bytes)}, "
        f"activations {show_bytes(e.activation_bytes)} for a batch of {config.batch_size}"
    )
    if e.processes > 1:
        parts += f", times {e.processes} processes"
    return (
        f"config: the job is estimated to need {show_bytes(e.memory_bytes)} of memory ({parts}; "
        f"data {show_bytes(e.data_bytes)}), above this deployment's limit of "
        f"{show_bytes(limits.job_memory_bytes)} ({setting('job_memory_bytes')}): lower "
        "batch_size or the model's size"
    )


def check_shape(body: Any, limits: Limits, max_errors: int = 5) -> list[str]:
    """Strings, lists, objects and nesting of a submitted JSON document within their caps.

    Iterative (no recursion on hostile depth) and stops after ``max_errors`` findings.
    """
    errors: list[str] = []
    todo: deque[tuple[str, Any, int]] = deque([("job", body, 1)])
    while todo and len(errors) < max_errors:
        where, value, depth = todo.popleft()
        if isinstance(value, str) and len(value) > limits.string_chars:
            errors.append(_shape(where, f"text of {len(value)} characters", "string_chars", limits))
        elif isinstance(value, dict | list):
            problem = _container(where, value, depth, limits)
            if problem:
                errors.append(problem)
                continue
            items = value.items() if isinstance(value, dict) else enumerate(value)
            for name, item in items:
                path = f"{where}[{name}]" if isinstance(value, list) else f"{where}.{name}"
                todo.append((path[:200], item, depth + 1))
    return errors


def _container(where: str, value: dict[Any, Any] | list[Any], depth: int, limits: Limits) -> str:
    if depth > limits.nesting_depth:
        return _shape(where, f"nesting depth {depth}", "nesting_depth", limits)
    if isinstance(value, list) and len(value) > limits.list_items:
        return _shape(where, f"a list of {len(value)} items", "list_items", limits)
    if isinstance(value, dict) and len(value) > limits.object_keys:
        return _shape(where, f"an object of {len(value)} keys", "object_keys", limits)
    return ""


def _shape(where: str, what: str, cap: str, limits: Limits) -> str:
    return f"{where}: {what} is above the limit of {show(getattr(limits, cap))} ({setting(cap)})"


@dataclass(frozen=True)
class Capacity:
    """What one trainer's worker can give a job: its memory budget and its devices."""

    memory_budget_bytes: int  # RSS of the worker and its DDP ranks together
    gpu_memory_bytes: tuple[int, ...] = ()  # usable memory of each GPU (empty: CPU only)
    cpu_max_world_size: int = 2

    def processes(self, config: Any) -> int:
        """How many training processes a job's config starts here."""
        spec = config.distributed
        if not spec.enabled:
            return 1
        return int(spec.world_size or len(self.gpu_memory_bytes) or 2)

    def gpus_held(self, config: Any) -> int:
        """How many GPUs a job's config holds here: one per process (none on a CPU trainer)."""
        return min(self.processes(config), len(self.gpu_memory_bytes))


def check_capacity(estimate: ResourceEstimate | None, config: Any, capacity: Capacity) -> list[str]:
    """The job against this trainer: its processes against the devices, its memory the budget."""
    errors = []
    world, gpus = capacity.processes(config), capacity.gpu_memory_bytes
    if gpus and world > len(gpus):
        errors.append(
            f"config.distributed.world_size {world} is more than the {len(gpus)} GPUs of this "
            "trainer: leave world_size out to use every GPU"
        )
    if not gpus and world > capacity.cpu_max_world_size:
        errors.append(
            f"config.distributed.world_size {world} is more than the {capacity.cpu_max_world_size} "
            "processes a trainer without GPUs runs (SPARKTRAINER_CPU_MAX_WORLD_SIZE)"
        )
    if estimate is None or errors:
        return errors
    budget = show_bytes(capacity.memory_budget_bytes)
    if gpus and estimate.process_bytes > min(gpus):
        errors.append(
            f"config: one training process is estimated to need "
            f"{show_bytes(estimate.process_bytes)} of GPU memory, more than this trainer's GPUs "
            f"have ({show_bytes(min(gpus))} usable): lower batch_size or the model's size"
        )
    host = estimate.data_bytes if gpus else estimate.memory_bytes
    if host > capacity.memory_budget_bytes:
        errors.append(
            f"config: the job is estimated to need {show_bytes(host)} of memory on this trainer, "
            f"above its worker memory budget of {budget} "
            "(SPARKTRAINER_WORKER_MEMORY_BUDGET_BYTES): lower batch_size, the data or the model"
        )
    return errors


def check_on_trainer(
    kind: JobKind, config: Any, architecture: dict[str, Any] | None, limits: Limits, cap: Capacity
) -> list[str]:
    """A job estimated where it runs, from its model's config.json: the caps, then the trainer."""
    estimate = kind.estimate(config, architecture)
    if estimate is None:
        return check_capacity(None, config, cap)
    return check_estimate(estimate, config, limits) or check_capacity(estimate, config, cap)
