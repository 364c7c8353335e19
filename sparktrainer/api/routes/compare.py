"""GET /api/compare: runs side by side; GET /api/compare/series: their curves in one answer.

Runs are chosen by ``jobs=A,B,C``, ``sweep=ID``, ``model=NAME`` (its versions) or ``tag=T``
(any mix, at most ``MAX_RUNS``). Both read the read model only (``registry/compare.py``).
"""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Query, Request
from fastapi.responses import JSONResponse

from sparktrainer.api.state import ApiError, state_of
from sparktrainer.registry.compare import (
    MAX_CURVE_POINTS,
    MAX_RUNS,
    CompareError,
    RunSelection,
    best_run,
    compare_runs,
    compare_series,
    sweep_facts,
)
from sparktrainer.registry.rows import Row
from sparktrainer.registry.store import RegistryStore

router = APIRouter(prefix="/api/compare", tags=["compare"])
Jobs = Annotated[str, Query(max_length=MAX_RUNS * 130, description="job ids, comma-separated")]
Name = Annotated[str | None, Query(max_length=256)]


def _selection(jobs: str, sweep: str | None, model: str | None, tag: str | None) -> RunSelection:
    ids = tuple(j.strip() for j in jobs.split(",") if j.strip())
    if len(ids) > MAX_RUNS:
        raise ApiError(422, f"{len(ids)} job ids: compare at most {MAX_RUNS} at once")
    if not (ids or sweep or model or tag):
        raise ApiError(422, "choose runs: jobs=A,B,C, sweep=ID, model=NAME or tag=TAG")
    return RunSelection(ids, sweep, model, tag)


def _chosen(registry: RegistryStore, selection: RunSelection) -> list[str]:
    try:
        return registry.read(selection.job_ids)
    except CompareError as e:
        raise ApiError(422, str(e)) from e


@router.get("")
def compare(
    request: Request, jobs: Jobs = "", sweep: Name = None, model: Name = None, tag: Name = None,
    metric: Name = None,
) -> JSONResponse:  # fmt: skip
    """Each run's final and best metrics, the config paths that differ, its data and duration.

    ``metric`` (default: the sweep's metric, else ``loss/val``) names the series ``best`` ranks by.
    """
    registry = state_of(request).registry
    ids = _chosen(registry, _selection(jobs, sweep, model, tag))
    found: Row = registry.read(compare_runs, ids)
    if sweep:
        found["sweep"] = registry.read(sweep_facts, sweep)
    metric = metric or (found.get("sweep") or {}).get("series") or "loss/val"
    found["metric"], found["best"] = metric, best_run(found, metric)
    return JSONResponse(found)


@router.get("/series")
def series(
    request: Request, jobs: Jobs = "", sweep: Name = None, model: Name = None, tag: Name = None,
    names: Annotated[list[str] | None, Query(alias="series", max_length=32)] = None,
    points: Annotated[int, Query(ge=2, le=MAX_CURVE_POINTS)] = 200,
) -> JSONResponse:  # fmt: skip
    """Every chosen run's series (``series=`` to pick some), each thinned to about ``points``."""
    registry = state_of(request).registry
    ids = _chosen(registry, _selection(jobs, sweep, model, tag))
    return JSONResponse(registry.read(compare_series, ids, names or [], points))
