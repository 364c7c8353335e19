"""The parameters of a sweep's trial n: a pure function of the sweep and the trials so far.

grid: the n-th point of the product of the parameters' values (the last parameter varies
fastest); random: drawn from a generator seeded by (seed, n); tpe: Optuna's TPE sampler, seeded
by (seed + n), on a study rebuilt from the ended trials. The same log gives the same
suggestion, so a restarted controller plans what it would have planned.
"""

from __future__ import annotations

import itertools
import math
import random
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import optuna

from sparktrainer.contracts.sweeps import Choice, Range, SweepConfig

optuna.logging.set_verbosity(optuna.logging.WARNING)


@dataclass(frozen=True)
class Tried:
    """An ended trial, as the sampler learns from it: its params and its metric (None: no value)."""

    params: dict[str, Any]
    value: float | None
    stopped: bool = False


def _grid_values(param: Choice | Range) -> list[Any]:
    return list(param.values) if isinstance(param, Choice) else param.grid()


def grid_point(config: SweepConfig, n: int) -> dict[str, Any]:
    """The n-th (1-based) point of the grid."""
    names = list(config.space)
    axes = [_grid_values(config.space[k]) for k in names]
    point = next(itertools.islice(itertools.product(*axes), n - 1, None))
    return dict(zip(names, point, strict=True))


def random_point(config: SweepConfig, n: int) -> dict[str, Any]:
    """Trial n's draw from a generator seeded by (seed, n)."""
    rng = random.Random(f"{config.seed}:{n}")
    out: dict[str, Any] = {}
    for name, param in config.space.items():
        if isinstance(param, Choice):
            out[name] = rng.choice(param.values)
        elif param.type == "int":
            out[name] = rng.randrange(int(param.low), int(param.high) + 1, param.step or 1)
        elif param.type == "loguniform":
            out[name] = math.exp(rng.uniform(math.log(param.low), math.log(param.high)))
        else:
            out[name] = rng.uniform(param.low, param.high)
    return out


def _distributions(config: SweepConfig) -> dict[str, optuna.distributions.BaseDistribution]:
    out: dict[str, optuna.distributions.BaseDistribution] = {}
    for name, p in config.space.items():
        if isinstance(p, Choice):  # by index: Optuna's categories are scalars, ours may be lists
            out[name] = optuna.distributions.CategoricalDistribution(list(range(len(p.values))))
        elif p.type == "int":
            out[name] = optuna.distributions.IntDistribution(
                int(p.low), int(p.high), step=p.step or 1
            )
        else:
            out[name] = optuna.distributions.FloatDistribution(
                p.low, p.high, log=p.type == "loguniform"
            )
    return out


def _encoded(config: SweepConfig, params: dict[str, Any]) -> dict[str, Any] | None:
    out = {}
    for name, p in config.space.items():
        value = params.get(name)
        if isinstance(p, Choice):
            if value not in p.values:
                return None
            value = p.values.index(value)
        out[name] = value
    return out


def tpe_point(config: SweepConfig, n: int, history: Sequence[Tried]) -> dict[str, Any]:
    """Optuna's TPE suggestion after the ended trials (stopped ones count as pruned)."""
    direction = config.better()
    study = optuna.create_study(
        direction=direction, sampler=optuna.samplers.TPESampler(seed=config.seed + n)
    )
    dists = _distributions(config)
    for tried in history:
        params = _encoded(config, tried.params)
        if params is None or tried.value is None or not math.isfinite(tried.value):
            continue
        state = (
            optuna.trial.TrialState.PRUNED if tried.stopped else optuna.trial.TrialState.COMPLETE
        )
        study.add_trial(optuna.trial.create_trial(
            params=params, distributions=dists, state=state,
            value=None if tried.stopped else tried.value,
            intermediate_values={0: tried.value} if tried.stopped else None,
        ))  # fmt: skip
    suggested = study.ask(dists).params
    return {name: (p.values[suggested[name]] if isinstance(p, Choice) else suggested[name])
            for name, p in config.space.items()}  # fmt: skip


def suggest(config: SweepConfig, n: int, history: Sequence[Tried]) -> dict[str, Any]:
    """Trial n's parameters (1-based)."""
    if config.sampler == "grid":
        return grid_point(config, n)
    if config.sampler == "tpe":
        return tpe_point(config, n, history)
    return random_point(config, n)
