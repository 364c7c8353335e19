"""Ids as people copy them: printed whole at 80 columns, and a unique prefix taken anywhere.

The CLI commands run in this process on a read model folded here (``--no-sync``: no stack).
"""

from __future__ import annotations

from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path

import pytest

from sparktrainer.cli import common
from sparktrainer.cli.main import main
from sparktrainer.contracts.events import (
    Artifact,
    JobCompleted,
    JobProgress,
    JobValidated,
    ModelRegistered,
)
from sparktrainer.registry import store
from sparktrainer.registry.fold import apply
from sparktrainer.registry.ids import AmbiguousId, whole_id

TWINS = ["780bdd90-80c1-4a1e-9d1e-0c5a3b1f2e01", "780bdd90-80c1-4a1e-9d1e-0c5a3b1f2e02"]
LONER = "3f2a9c44-1b7e-4c0d-8e55-a1b2c3d4e5f6"
T0 = datetime(2026, 3, 1, tzinfo=UTC)


def _validated(job_id: str) -> JobValidated:
    return JobValidated(job_id=job_id, name="a-long-job-name-for-the-table", type="train",
                        framework="pytorch", config_kind="pytorch.mlp",
                        config={"input_size": 4, "output_size": 2}, validated_at=T0)  # fmt: skip


def _registered(job_id: str) -> ModelRegistered:
    return ModelRegistered(model_id=job_id, job_id=job_id, name="a-long-model-name",
                           framework="pytorch", architecture={"architecture": "custom"},
                           artifacts=[Artifact(path="model.pth", size_bytes=1, sha256="ab" * 32)],
                           storage_prefix=f"models/{job_id}/", register_as="digits",
                           created_at=T0)  # fmt: skip


@pytest.fixture
def db(tmp_path: Path) -> Path:
    path = tmp_path / "registry.sqlite3"
    conn = store.connect(path)
    events = [e for j in (*TWINS, LONER) for e in (_validated(j), _registered(j))]
    events.append(JobProgress(job_id=LONER, epoch=1, total_epochs=1, step=4, total_steps=4,
                              loss=0.5, accuracy=0.75))  # fmt: skip
    events.append(JobCompleted(job_id=LONER, model_id=LONER, at=T0))
    for offset, event in enumerate(events):
        apply(conn, "t", 0, offset, event)
    conn.close()
    return path


@pytest.fixture
def narrow() -> Iterator[None]:
    """The CLI's console as a terminal 80 columns wide."""
    width = common.out.width
    common.out.width = 80
    yield
    common.out.width = width


def _run(capsys: pytest.CaptureFixture[str], db: Path, *argv: str) -> tuple[int, str]:
    with common.out.capture() as captured:
        code = main([*argv, "--db", str(db), "--no-sync"])
    std = capsys.readouterr()  # charts and JSON go to stdout itself
    return code, captured.get() + std.out + std.err


@pytest.mark.parametrize(
    "command", [["jobs", "list"], ["models", "list"], ["models", "names", "digits"]]
)
def test_lists_print_every_id_whole_at_80_columns(narrow, capsys, db, command) -> None:
    code, printed = _run(capsys, db, *command)
    assert code == 0
    for job_id in (*TWINS, LONER):
        assert job_id in printed, printed


@pytest.mark.parametrize("command", [["jobs", "show"], ["models", "show"], ["jobs", "metrics"]])
def test_a_unique_prefix_names_its_id_and_a_shared_one_lists_the_candidates(
    capsys, db, command
) -> None:
    code, printed = _run(capsys, db, *command, LONER[:6])
    assert code == 0 and (LONER in printed or "loss" in printed), printed
    code, printed = _run(capsys, db, *command, TWINS[0][:8])
    assert code == 2
    assert "more than one" in printed and TWINS[0] in printed and TWINS[1] in printed


def test_cancel_and_watch_refuse_a_job_the_log_never_held_and_an_ended_one(capsys, db) -> None:
    code, printed = _run(capsys, db, "jobs", "watch", "no-such-job")
    assert code == 2 and "No job 'no-such-job'" in printed
    code, printed = _run(capsys, db, "jobs", "cancel", LONER[:5])
    assert code == 1 and f"{LONER} has already ended (completed)" in printed


def test_whole_id_is_exact_first_and_takes_prefixes_literally(db: Path) -> None:
    conn = store.connect(db)
    assert whole_id(conn, "job", LONER) == LONER
    assert whole_id(conn, "job", "3f2a") == LONER
    assert whole_id(conn, "job", "3f2_") == "3f2_"  # '_' is a character, not a wildcard
    assert whole_id(conn, "model", "nothing-like-it") == "nothing-like-it"
    with pytest.raises(AmbiguousId) as e:
        whole_id(conn, "job", "780bdd90")
    assert e.value.matches == TWINS


def test_metrics_refuses_a_series_the_job_lacks_and_names_those_it_has(capsys, db) -> None:
    code, printed = _run(capsys, db, "jobs", "metrics", LONER[:6], "--series", "nope", "--json")
    assert code == 2 and f"job {LONER} has no series nope; it has: " in printed, printed
    assert "loss" in printed.split("it has: ")[1]
    code, printed = _run(capsys, db, "jobs", "metrics", LONER, "--series", "loss/train", "--json")
    assert code == 0 and '"loss/train"' in printed and "accuracy/train" not in printed, printed


def test_models_list_refuses_a_sort_metric_no_model_has(capsys, db) -> None:
    code, printed = _run(capsys, db, "models", "list", "--sort", "bogus")
    assert code == 2 and "no model has the metric 'bogus' to sort by" in printed, printed
    assert "created_at, version, name" in printed
    code, printed = _run(capsys, db, "models", "list", "--sort", "name", "--json")
    assert code == 0 and LONER in printed


def test_show_prints_nested_fields_as_json_not_python(capsys, db) -> None:
    code, printed = _run(capsys, db, "jobs", "show", LONER)
    assert code == 0 and '"loss": 0.5' in printed and "'loss'" not in printed, printed
