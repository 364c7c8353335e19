"""Sampling (grid, random, Optuna's TPE) and the early-stopping rules, as pure functions."""

from __future__ import annotations

from sparktrainer.contracts.sweeps import EarlyStopping, SweepConfig
from sparktrainer.sweeps.sampling import Tried, suggest
from sparktrainer.sweeps.stopping import asha_stop, median_stop, rungs

BASE = {"type": "train", "framework": "pytorch", "config": {"architecture": "custom"}}


def config(sampler: str, **space: object) -> SweepConfig:
    return SweepConfig.model_validate(
        {"base": BASE, "space": space, "sampler": sampler, "max_trials": 20, "seed": 7}
    )


def test_a_grid_walks_every_point_once_in_order() -> None:
    c = config("grid", learning_rate={"type": "choice", "values": [0.1, 0.01]},
               hidden_layers={"type": "choice", "values": [[8], [16], [32]]})  # fmt: skip
    points = [suggest(c, n, []) for n in range(1, 7)]
    assert points[0] == {"learning_rate": 0.1, "hidden_layers": [8]}
    assert points[2] == {"learning_rate": 0.1, "hidden_layers": [32]}  # the last varies fastest
    assert len({repr(p) for p in points}) == 6 and c.grid_size(1000) == 6


def test_random_draws_are_a_function_of_seed_and_trial_and_stay_in_range() -> None:
    c = config("random", learning_rate={"type": "loguniform", "low": 1e-5, "high": 1e-1},
               batch_size={"type": "int", "low": 8, "high": 64, "step": 8},
               optimizer={"type": "choice", "values": ["adam", "sgd"]})  # fmt: skip
    draws = [suggest(c, n, []) for n in range(1, 30)]
    assert draws == [suggest(c, n, []) for n in range(1, 30)]  # again, the same
    assert len({d["learning_rate"] for d in draws}) == 29
    assert all(1e-5 <= d["learning_rate"] <= 1e-1 for d in draws)
    assert {d["batch_size"] for d in draws} <= set(range(8, 65, 8))
    assert {d["optimizer"] for d in draws} == {"adam", "sgd"}


def test_tpe_learns_from_the_ended_trials_and_repeats_itself_from_the_same_log() -> None:
    c = config("tpe", learning_rate={"type": "uniform", "low": 0.0, "high": 1.0},
               hidden_layers={"type": "choice", "values": [[8], [16]]})  # fmt: skip
    history: list[Tried] = []
    for n in range(1, 19):
        params = suggest(c, n, history)
        assert params == suggest(c, n, list(history))  # a restart would plan the same
        assert 0.0 <= params["learning_rate"] <= 1.0 and params["hidden_layers"] in ([8], [16])
        loss = (params["learning_rate"] - 0.2) ** 2 + (0.1 if params["hidden_layers"] == [8] else 0)
        history.append(Tried(params, loss))
    late = [abs(h.params["learning_rate"] - 0.2) for h in history[-6:]]
    early = [abs(h.params["learning_rate"] - 0.2) for h in history[:6]]
    assert sum(late) < sum(early)  # it moved towards the best region


MEDIAN = EarlyStopping(rule="median", min_epochs=1, min_trials=2)


def test_median_rule_stops_a_trial_worse_than_the_others_median() -> None:
    others = [{1: 0.5, 2: 0.4}, {1: 0.6, 2: 0.5}, {1: 2.0}]
    assert median_stop({1: 2.2}, others, 1, MEDIAN, minimize=True) is not None
    assert median_stop({1: 0.55}, others, 1, MEDIAN, minimize=True) is None
    assert median_stop({1: 2.2}, others[:1], 1, MEDIAN, minimize=True) is None  # too few others
    late = EarlyStopping(rule="median", min_epochs=2, min_trials=2)
    assert median_stop({1: 2.2}, others, 1, late, minimize=True) is None  # grace epochs
    assert median_stop({1: 0.2}, [{1: 0.9}, {1: 0.8}], 1, MEDIAN, minimize=False) is not None


def test_asha_promotes_the_best_fraction_at_each_rung() -> None:
    rule = EarlyStopping(rule="asha", min_epochs=1, reduction_factor=3)
    assert rungs(rule, 20) == [1, 3, 9]
    others = [{1: 0.3}, {1: 0.4}, {1: 0.9}, {1: 1.0}, {1: 1.1}]
    assert asha_stop({1: 0.2}, others, 1, rule, True, 20) is None  # the best: promoted
    assert asha_stop({1: 0.8}, others, 1, rule, True, 20) is not None  # 6 at rung: best 2 go on
    assert asha_stop({1: 5.0}, [], 1, rule, True, 20) is None  # alone at the rung: the best
    assert asha_stop({2: 5.0}, others, 2, rule, True, 20) is None  # not a rung
