"""A sweep is checked as deeply as a job: its search, its caps, its base, its space's corners."""

from __future__ import annotations

import copy
import json
from typing import Any

from sparktrainer.contracts.records import Received
from sparktrainer.contracts.schedule_events import SweepValidated
from sparktrainer.contracts.topics import JOBS_SUBMITTED
from sparktrainer.settings import Limits
from sparktrainer.validation.door import decide
from sparktrainer.validation.sweeps import validate_submission

BASE = {
    "type": "train",
    "framework": "pytorch",
    "config": {"architecture": "custom", "input_size": 64, "output_size": 10, "epochs": 2,
               "data": {"source": "digits"}},
}  # fmt: skip


def sweep(**config: Any) -> dict[str, Any]:
    return {
        "job_id": "sw-1",
        "name": "lr search",
        "type": "sweep",
        "framework": "pytorch",
        "priority": "low",
        "resources": {"gpus": 1},
        "config": {"base": copy.deepcopy(BASE),
                   "space": {"learning_rate": {"type": "loguniform", "low": 1e-4, "high": 0.1}},
                   "max_trials": 8, "max_concurrent": 2, **config},
    }  # fmt: skip


def test_a_good_sweep_is_validated_with_its_base_filled_in_and_routed_like_its_trials() -> None:
    body = sweep(early_stopping={"rule": "asha", "reduction_factor": 2})
    rec = Received(JOBS_SUBMITTED, 0, 3, None, json.dumps(body).encode(), (), 1)
    verdict = decide(rec, None, Limits())
    assert isinstance(verdict, SweepValidated), verdict
    assert verdict.sweep_id == "sw-1" and verdict.trials == 8
    base = verdict.config.base
    assert base["priority"] == "low" and base["resources"]["gpus"] == 1  # the sweep's, by default
    assert verdict.config.better() == "minimize"


def test_every_cap_of_a_sweep_is_checked() -> None:
    limits = Limits(sweep_trials=5, sweep_concurrency=2, sweep_parameters=1, sweep_choices=2)
    space = {"learning_rate": {"type": "choice", "values": [0.1, 0.01, 0.001]},
             "batch_size": {"type": "int", "low": 8, "high": 64, "step": 8}}  # fmt: skip
    result = validate_submission(sweep(space=space, max_concurrent=3), None, limits)
    text = " | ".join(result.errors)
    for setting in ("SWEEP_TRIALS", "SWEEP_CONCURRENCY", "SWEEP_PARAMETERS", "SWEEP_CHOICES"):
        assert f"SPARKTRAINER_MAX_{setting}" in text, text
    grid = {f"p{i}": {"type": "choice", "values": list(range(10))} for i in range(6)}
    result = validate_submission(sweep(space=grid, sampler="grid"), None, Limits())
    assert any("grid points" in e for e in result.errors), result.errors


def test_a_bad_base_a_bad_corner_a_continuous_grid_and_a_nested_sweep_are_refused() -> None:
    bad_base = sweep()
    bad_base["config"]["base"]["config"]["epochs"] = 0
    assert any(e.startswith("config.base:") for e in validate_submission(bad_base, None).errors)
    corner = sweep(space={"learning_rate": {"type": "uniform", "low": 0.01, "high": 50}})
    errors = validate_submission(corner, None).errors
    assert any("config.space.learning_rate = 50" in e and "LEARNING_RATE" in e for e in errors)
    grid = validate_submission(sweep(sampler="grid"), None).errors
    assert any("a grid needs countable values" in e for e in grid), grid
    nested = sweep()
    nested["config"]["base"] = sweep()
    assert any("cannot run here" in e for e in validate_submission(nested, None).errors)
    path = validate_submission(sweep(space={"../x": {"type": "choice", "values": [1]}}), None)
    assert any("not a config path" in e for e in path.errors)


def test_the_readme_sweep_is_a_valid_sweep() -> None:
    from pathlib import Path

    readme = (Path(__file__).resolve().parents[3] / "README.md").read_text()
    blocks = [json.loads(b.split("```", 1)[0]) for b in readme.split("```json\n")[1:]]
    [example] = [b for b in blocks if b.get("type") == "sweep"]
    result = validate_submission(example, None)
    assert result.valid, result.errors
    assert result.sweep is not None and result.sweep.sampler == "tpe" and result.trials == 12
