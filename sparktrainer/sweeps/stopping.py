"""Early stopping rules, as pure functions of the trials' per-epoch values.

``values`` of a trial map a finished epoch to the sweep's metric at that epoch. Both rules
compare a trial with the other trials of its sweep at the same epoch (running or ended):

- median (Vizier's median stopping rule, Optuna's MedianPruner): from ``min_epochs`` on, a trial
  whose best value so far is worse than the median of the others' best values so far, when at
  least ``min_trials`` others reached that epoch;
- ASHA (asynchronous successive halving): rungs at ``min_epochs * reduction_factor**k``; at a
  rung a trial goes on only if it ranks within the best ``n // reduction_factor`` of the ``n``
  trials that reached the rung (it counts itself; the best one always goes on).
"""

from __future__ import annotations

import statistics
from collections.abc import Mapping, Sequence

from sparktrainer.contracts.sweeps import EarlyStopping

Values = Mapping[int, float]


def _best_until(values: Values, epoch: int, minimize: bool) -> float | None:
    seen = [v for e, v in values.items() if e <= epoch]
    if not seen:
        return None
    return min(seen) if minimize else max(seen)


def _worse(a: float, b: float, minimize: bool) -> bool:
    return a > b if minimize else a < b


def median_stop(
    mine: Values, others: Sequence[Values], epoch: int, rule: EarlyStopping, minimize: bool
) -> str | None:
    """Why the median rule stops this trial at ``epoch`` (None: it goes on)."""
    if epoch < rule.min_epochs or epoch not in mine:
        return None
    theirs = [
        b for o in others if epoch in o and (b := _best_until(o, epoch, minimize)) is not None
    ]
    if len(theirs) < rule.min_trials:
        return None
    best, median = _best_until(mine, epoch, minimize), statistics.median(theirs)
    if best is not None and _worse(best, median, minimize):
        return (
            f"median rule at epoch {epoch}: best so far {best:.4g} is worse than the median "
            f"{median:.4g} of {len(theirs)} other trials"
        )
    return None


def rungs(rule: EarlyStopping, max_epochs: int) -> list[int]:
    """The epochs at which ASHA compares trials (below the last epoch)."""
    out, epoch = [], rule.min_epochs
    while epoch < max_epochs:
        out.append(epoch)
        epoch *= rule.reduction_factor
    return out


def asha_stop(
    mine: Values, others: Sequence[Values], epoch: int, rule: EarlyStopping, minimize: bool,
    max_epochs: int,
) -> str | None:  # fmt: skip
    """Why ASHA stops this trial at ``epoch``, a rung (None: it is promoted, or no rung)."""
    if epoch not in rungs(rule, max_epochs) or epoch not in mine:
        return None
    at_rung = sorted([mine[epoch], *(o[epoch] for o in others if epoch in o)],
                     reverse=not minimize)  # fmt: skip
    keep = max(1, len(at_rung) // rule.reduction_factor)
    cutoff = at_rung[keep - 1]
    if _worse(mine[epoch], cutoff, minimize):
        return (
            f"ASHA at rung epoch {epoch}: {mine[epoch]:.4g} is outside the best {keep} of "
            f"{len(at_rung)} trials at this rung (cutoff {cutoff:.4g})"
        )
    return None


def stop_reason(
    mine: Values, others: Sequence[Values], epoch: int, rule: EarlyStopping, minimize: bool,
    max_epochs: int,
) -> str | None:  # fmt: skip
    """The sweep's rule applied to one trial at one finished epoch."""
    if rule.rule == "median":
        return median_stop(mine, others, epoch, rule, minimize)
    if rule.rule == "asha":
        return asha_stop(mine, others, epoch, rule, minimize, max_epochs)
    return None
