"""Sweeps: a search over one base job (``type: "sweep"``), declared as plain pydantic.

The validator parses a sweep's ``config`` into :class:`SweepConfig`; the sweep controller
(``sparktrainer/sweeps/``) turns it into trials, each an ordinary job: the base job with the
trial's parameters set (:func:`trial_job`). Every size a sweep asks for is listed by
:func:`sweep_asks` and bounded by a ``Limits`` cap.
"""

from __future__ import annotations

import copy
import math
import re
from typing import Annotated, Any, Literal, TypeGuard

import pydantic
from pydantic import BaseModel, ConfigDict, Field, field_validator, model_validator

from sparktrainer.contracts.jobspec import NonNegInt, PosInt

_PATH = re.compile(r"[A-Za-z_][A-Za-z0-9_]{0,63}(\.[A-Za-z_][A-Za-z0-9_]{0,63}){0,3}")
SWEEP_ID_CHARS = 120  # trial ids are "{sweep_id}-t{n:03d}": 128 characters at most
Scalar = pydantic.StrictBool | pydantic.StrictInt | pydantic.StrictFloat | pydantic.StrictStr
Value = Scalar | list[pydantic.StrictInt]  # a list of ints: e.g. hidden_layers
Metric = Literal["val_loss", "val_accuracy", "loss", "accuracy"]
Direction = Literal["minimize", "maximize"]
# Which way is better for each metric when the sweep does not say.
DEFAULT_DIRECTION: dict[str, Direction] = {
    "val_loss": "minimize",
    "loss": "minimize",
    "val_accuracy": "maximize",
    "accuracy": "maximize",
}


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True, allow_inf_nan=False)


class Choice(_Strict):
    """One of the listed values."""

    type: Literal["choice"] = "choice"
    values: list[Value] = Field(min_length=1)

    def size(self) -> int:
        """How many values a grid takes from it."""
        return len(self.values)

    def corners(self) -> list[Value]:
        """The values to check a base job with: all of them."""
        return list(self.values)

    def admits(self, value: object) -> bool:
        """Whether ``value`` is one of the values, of the same JSON type (``true`` is not 1)."""
        return any(_same(value, v) for v in self.values)


class Range(_Strict):
    """A number between ``low`` and ``high``: uniform, log-uniform, or an integer (``step``)."""

    type: Literal["uniform", "loguniform", "int"]
    low: pydantic.StrictFloat | pydantic.StrictInt
    high: pydantic.StrictFloat | pydantic.StrictInt
    step: PosInt | None = None  # int only: the grid walks low, low + step, ... up to high

    @model_validator(mode="after")
    def _bounds(self) -> Range:
        if not self.low < self.high:
            raise ValueError(f"low ({self.low}) must be below high ({self.high})")
        if self.type == "loguniform" and self.low <= 0:
            raise ValueError("a loguniform range needs low > 0")
        if self.type == "int" and not (isinstance(self.low, int) and isinstance(self.high, int)):
            raise ValueError("an int range needs integer low and high")
        if self.step is not None and self.type != "int":
            raise ValueError("step is for int ranges only")
        return self

    def size(self) -> int:
        """How many values a grid takes from it (0: a continuous range cannot be a grid)."""
        if self.type != "int" or self.step is None:
            return 0
        return int(self.high - self.low) // self.step + 1

    def grid(self) -> list[int]:
        """The values a grid walks (int ranges with a step)."""
        return list(range(int(self.low), int(self.high) + 1, self.step or 1))

    def corners(self) -> list[Value]:
        """The values to check a base job with: both ends."""
        return [self.low, self.high]

    def admits(self, value: object) -> bool:
        """Whether ``value`` is a number of the range (an int range's: an integer on a step)."""
        if isinstance(value, bool) or not isinstance(value, int | float):
            return False
        if self.type == "int":
            on_step = (
                (value - self.low) % (self.step or 1) == 0 if isinstance(value, int) else False
            )
            return on_step and self.low <= value <= self.high
        # A log-uniform draw is exp(log(x)): its ends may be off by a rounding.
        slack = _ROUNDING * max(abs(self.low), abs(self.high))
        return math.isfinite(value) and self.low - slack <= value <= self.high + slack


Param = Annotated[Choice | Range, Field(discriminator="type")]
_ROUNDING = 1e-9


def _same(a: object, b: object) -> bool:
    """Equal and of the same type, lists element by element (JSON's sense of the same value)."""
    if isinstance(a, list) and isinstance(b, list):
        return len(a) == len(b) and all(_same(x, y) for x, y in zip(a, b, strict=True))
    return type(a) is type(b) and a == b


class EarlyStopping(_Strict):
    """Stopping losing trials early from their progress events.

    ``median``: at each epoch from ``min_epochs`` on, a trial whose best value so far is worse
    than the median of the other trials' best values at that epoch (at least ``min_trials`` of
    them) is stopped. ``asha``: rungs at ``min_epochs * reduction_factor**k`` epochs; a trial
    reaching a rung goes on only if it is among the best 1/``reduction_factor`` of the trials
    seen at that rung (always when it is the best so far).
    """

    rule: Literal["none", "median", "asha"] = "none"
    min_epochs: PosInt = 1
    min_trials: PosInt = 2
    reduction_factor: Annotated[pydantic.StrictInt, Field(ge=2)] = 3


class SweepConfig(_Strict):
    """The ``config`` of a sweep job."""

    base: dict[str, Any] = Field(description="A train or finetune job, as the guide writes it")
    space: dict[str, Param] = Field(
        min_length=1, description="config path (dots for nesting) -> its values"
    )
    sampler: Literal["grid", "random", "tpe"] = "random"
    max_trials: PosInt = 10
    max_concurrent: PosInt = 2
    metric: Metric = "val_loss"
    direction: Direction | None = None
    early_stopping: EarlyStopping = EarlyStopping()
    seed: NonNegInt = 0

    @field_validator("space")
    @classmethod
    def _paths(cls, space: dict[str, Any]) -> dict[str, Any]:
        for path in space:
            if not _PATH.fullmatch(path):
                raise ValueError(
                    f"space key {path[:80]!r} is not a config path: use field names joined "
                    "by dots, e.g. 'learning_rate' or 'data.num_samples'"
                )
        return space

    @model_validator(mode="after")
    def _grid(self) -> SweepConfig:
        if self.sampler == "grid":
            continuous = [k for k, p in self.space.items() if p.size() == 0]
            if continuous:
                raise ValueError(
                    f"a grid needs countable values: {', '.join(continuous)} "
                    "(use choice, or an int range with a step)"
                )
        return self

    def plan_problem(self, params: dict[str, Any]) -> str | None:
        """Why ``params`` is not a point of the space (None: it is): every parameter of the
        space, each a value it admits, and nothing else."""
        if set(params) != set(self.space):
            missing, extra = (
                sorted(set(self.space) - set(params)),
                sorted(set(params) - set(self.space)),
            )
            return f"parameters differ from the space (missing {missing[:5]}, unknown {extra[:5]})"
        for name, param in self.space.items():
            if not param.admits(params[name]):
                return f"{name}={repr(params[name])[:60]} is not in the space ({param.type})"
        return None

    def better(self) -> Direction:
        """The direction that is better: the sweep's, else the metric's natural one."""
        return self.direction or DEFAULT_DIRECTION[self.metric]

    def grid_size(self, cap: int) -> int:
        """The number of grid points, counted up to ``cap + 1`` (so a huge one never overflows)."""
        total = 1
        for param in self.space.values():
            total *= max(param.size(), 1)
            if total > cap:
                return cap + 1
        return total

    def trials(self, grid_cap: int) -> int:
        """How many trials it runs: max_trials, or every grid point when the grid is smaller."""
        if self.sampler != "grid":
            return self.max_trials
        return min(self.max_trials, self.grid_size(grid_cap))


def sweep_asks(c: SweepConfig) -> list[tuple[str, float, str]]:
    """The sizes a sweep asks for, each with the ``Limits`` cap that bounds it."""
    asks: list[tuple[str, float, str]] = [
        ("config.max_trials", c.max_trials, "sweep_trials"),
        ("config.max_concurrent", c.max_concurrent, "sweep_concurrency"),
        ("config.space (parameters)", len(c.space), "sweep_parameters"),
        ("config.early_stopping.min_epochs", c.early_stopping.min_epochs, "epochs"),
        ("config.early_stopping.min_trials", c.early_stopping.min_trials, "sweep_trials"),
        ("config.seed", c.seed, "seed"),
    ]
    for name, param in c.space.items():
        if isinstance(param, Choice):
            asks.append((f"config.space.{name}.values (count)", len(param.values), "sweep_choices"))
        elif param.step is not None:
            asks.append((f"config.space.{name} (values)", param.size(), "sweep_choices"))
    return asks


def trial_id(sweep_id: str, trial: int) -> str:
    """The job id of a sweep's trial: derived, so a restarted controller names it the same."""
    return f"{sweep_id[:SWEEP_ID_CHARS]}-t{trial:03d}"


def with_params(base: dict[str, Any], params: dict[str, Any]) -> dict[str, Any]:
    """A copy of a job with each ``config`` path set to its value."""
    job = copy.deepcopy(base)
    config = job.setdefault("config", {})
    for path, value in params.items():
        *parents, leaf = path.split(".")
        node = config
        for part in parents:
            child = node.get(part)
            node[part] = child = child if isinstance(child, dict) else {}
            node = child
        node[leaf] = value
    return job


def trial_job(
    sweep_id: str, name: str, base: dict[str, Any], trial: int, params: dict[str, Any]
) -> dict[str, Any]:
    """The job a trial submits: the base with the trial's params, named and linked to the sweep."""
    job = with_params(base, params)
    job.update(
        job_id=trial_id(sweep_id, trial),
        name=f"{name} trial {trial}"[:256],
        sweep_id=sweep_id,
        trial=trial,
    )
    job["tags"] = [*job.get("tags", []), f"sweep:{sweep_id}"[:64]][-64:]
    return job


def finite(value: Any) -> TypeGuard[float]:
    """A number that is neither NaN nor infinite (metrics from events are checked again)."""
    return isinstance(value, int | float) and not isinstance(value, bool) and math.isfinite(value)
