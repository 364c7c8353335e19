"""Compare: runs chosen by ids, sweep, name or tag; what differs; final and best; thinned curves.

The read model is filled through the real fold (``bench/compare_fill.py``); the API is asked
in-process (ASGI), the CLI as a subprocess on the same file.
"""

from __future__ import annotations

import json
import math
import subprocess
import sys
from pathlib import Path

import httpx
import pytest

from bench.compare_fill import fill, loss_at, trial_params
from sparktrainer.api.app import create_app
from sparktrainer.registry import store
from sparktrainer.registry.compare import MAX_RUNS, RunSelection, compare_runs
from sparktrainer.registry.metric_series import job_series
from tests.conftest import make_test_settings

TRIALS, POINTS = 6, 120


@pytest.fixture(scope="module")
def db(tmp_path_factory: pytest.TempPathFactory) -> Path:
    path = tmp_path_factory.mktemp("compare") / "r.db"
    conn = store.connect(path)
    fill(conn, "sw", TRIALS, POINTS)
    conn.close()
    return path


async def _get(db: Path, path: str) -> httpx.Response:
    app = create_app(make_test_settings(), db_path=db)
    transport = httpx.ASGITransport(app=app)
    async with httpx.AsyncClient(transport=transport, base_url="http://localhost") as client:
        return await client.get(path)


async def test_a_sweep_compares_its_trials_with_what_differs_and_the_best(db: Path) -> None:
    body = (await _get(db, "/api/compare?sweep=sw")).json()
    assert [r["job_id"] for r in body["runs"]] == [f"sw-t{n:03d}" for n in range(1, TRIALS + 1)]
    assert body["differing"] == ["hidden_layers", "learning_rate"]  # input_size etc. are equal
    assert body["metric"] == "loss/val" and body["sweep"]["direction"] == "minimize"
    assert body["better"] == {"accuracy/val": "higher", "loss/train": "lower",
                              "loss/train_epoch": "lower", "loss/val": "lower"}  # fmt: skip
    finals = {r["job_id"]: r["metrics"]["loss/val"]["final"] for r in body["runs"]}
    for n in range(1, TRIALS + 1):
        run = body["runs"][n - 1]
        assert run["params"]["learning_rate"] == trial_params(n)["learning_rate"]
        assert finals[run["job_id"]] == pytest.approx(loss_at(trial_params(n), 1.0) * 1.1)
        train = run["metrics"]["loss/train"]
        assert train["best"] == pytest.approx(min(loss_at(trial_params(n), s / POINTS)
                                                  for s in range(1, POINTS + 1)))  # fmt: skip
        assert run["data"]["sha256"] and run["duration_s"] == 30 + n
    assert body["best"] == min(finals, key=lambda j: finals[j])
    shas = {r["data"]["sha256"] for r in body["runs"]}
    assert len(shas) == 2  # the fill trains on two versions of one object


async def test_curves_of_every_run_come_thinned_in_one_answer(db: Path) -> None:
    body = (await _get(db, "/api/compare/series?sweep=sw&series=loss/train&points=10")).json()
    assert len(body["runs"]) == TRIALS
    conn = store.connect(db)
    for run in body["runs"]:
        curve = run["series"]["loss/train"]
        whole = job_series(conn, run["job_id"])["series"]["loss/train"]
        assert 10 <= len(curve["steps"]) <= 12 and curve["steps"][0] == 1
        assert curve["steps"][-1] == POINTS and set(curve["steps"]) <= set(whole["steps"])
        at = dict(zip(whole["steps"], whole["values"], strict=True))
        assert all(at[s] == v for s, v in zip(curve["steps"], curve["values"], strict=True))
        assert list(run["series"]) == ["loss/train"]


async def test_runs_are_chosen_by_ids_name_or_tag_and_bounded(db: Path) -> None:
    body = (await _get(db, "/api/compare?jobs=sw-t002,sw-t004,nope")).json()
    assert [(r["job_id"], r["known"]) for r in body["runs"]] == [
        ("sw-t002", True), ("sw-t004", True), ("nope", False)]  # fmt: skip
    assert (await _get(db, "/api/compare")).status_code == 422
    many = ",".join(f"j{i}" for i in range(MAX_RUNS + 1))
    r = await _get(db, f"/api/compare?jobs={many}")
    assert r.status_code == 422 and str(MAX_RUNS) in r.json()["detail"]
    conn = store.connect(db)
    assert RunSelection(tag="nothing").job_ids(conn) == []
    assert compare_runs(conn, [])["runs"] == []


def test_the_summary_follows_a_resume_that_drops_points(db: Path, tmp_path: Path) -> None:
    """Last/min/max are kept as points fold; a resume that drops points recomputes them."""
    from sparktrainer.contracts.events import JobProgress, JobStarted
    from sparktrainer.registry.fold import apply

    conn = store.connect(tmp_path / "r.db")
    fill(conn, "one", 1, 40)
    job = "one-t001"
    started = JobStarted(job_id=job, attempt=2, resumed_from_step=10, name="t",
                         framework="pytorch", config_kind="pytorch.mlp", device="cpu",
                         worker="w", total_epochs=5)  # fmt: skip
    apply(conn, "other", 0, 0, started)
    apply(conn, "other", 0, 1, JobProgress(job_id=job, attempt=2, epoch=1, total_epochs=5,
                                          step=11, total_steps=40, loss=9.0))  # fmt: skip
    got = compare_runs(conn, [job])["runs"][0]["metrics"]["loss/train"]
    values = job_series(conn, job)["series"]["loss/train"]["values"]
    assert got == {"final": 9.0, "best": min(values), "step": 11} and not math.isnan(got["best"])


def test_the_cli_prints_the_table_and_json(db: Path) -> None:
    cmd = [sys.executable, "-m", "sparktrainer.cli.main", "compare", "--sweep", "sw", "--db",
           str(db), "--no-sync"]  # fmt: skip
    table = subprocess.run(cmd, capture_output=True, text=True, timeout=60, check=True).stdout
    assert "learning_rate" in table and "sw-t006" in table and "best by loss/val" in table
    as_json = subprocess.run(
        [*cmd, "--json"], capture_output=True, text=True, timeout=60, check=True
    )
    body = json.loads(as_json.stdout)
    assert body["best"] in table and len(body["runs"]) == TRIALS
