"""The CLI acts for --tenant or SPARKTRAINER_TENANT, a tenant the tenants file lists: its
registry changes, submit's door and its cancels. Its lists show whose each model and name is
(run in this process on a read model folded here)."""

from __future__ import annotations

import asyncio
from argparse import Namespace
from pathlib import Path

import pytest

from sparktrainer.cli import common
from sparktrainer.cli.common import CliError, acting_tenant
from sparktrainer.cli.main import main
from sparktrainer.contracts.events import Artifact, ModelRegistered
from sparktrainer.contracts.model_events import ModelArchived
from sparktrainer.contracts.records import decode_received
from sparktrainer.contracts.topics import MODELS_CHANGES
from sparktrainer.registry import store
from sparktrainer.registry.fold import apply
from sparktrainer.settings import Settings
from tests.integration.load_kit import read_all
from tests.tenants_kit import write_two_teams


def test_the_cli_acts_for_the_configured_tenant(tmp_path: Path) -> None:
    teams = write_two_teams(tmp_path)
    assert acting_tenant(Settings()) == "default"  # no file, no setting: the one default tenant
    assert acting_tenant(Settings(tenants_file=teams.path, tenant="speech")) == "speech"
    flag = Namespace(tenant="vision")  # --tenant wins over the setting
    assert acting_tenant(Settings(tenants_file=teams.path, tenant="speech"), flag) == "vision"
    with pytest.raises(CliError, match="SPARKTRAINER_TENANT 'ghost' is not a tenant") as e:
        acting_tenant(Settings(tenants_file=teams.path, tenant="ghost"))
    assert "default, vision, speech" in str(e.value)
    with pytest.raises(CliError, match="SPARKTRAINER_TENANTS_FILE"):
        acting_tenant(Settings(tenants_file=tmp_path / "missing.json"))


def _folded(tmp_path: Path) -> Path:
    """A read model where vision registered digits first, and speech's try at it is unnamed."""
    db = tmp_path / "registry.sqlite3"
    conn = store.connect(db)
    for offset, (model_id, tenant) in enumerate((("v1", "vision"), ("s1", "speech"))):
        apply(conn, "t", 0, offset, ModelRegistered(
            model_id=model_id, job_id=model_id, name=model_id, framework="pytorch",
            architecture={"architecture": "custom"}, register_as="digits", tenant=tenant,
            artifacts=[Artifact(path="model.pth", size_bytes=1, sha256="ab" * 32)],
            storage_prefix=f"models/{model_id}/"))  # fmt: skip
    conn.close()
    return db


def test_the_lists_show_each_models_and_names_tenant(tmp_path: Path) -> None:
    db = _folded(tmp_path)
    printed = {}
    for command in (["models", "list"], ["models", "names"], ["models", "names", "digits"]):
        with common.out.capture() as captured:
            assert main([*command, "--db", str(db), "--no-sync"]) == 0
        printed[command[-1]] = captured.get()
    assert "vision" in printed["list"] and "speech" in printed["list"]
    assert "vision" in printed["names"] and "speech" not in printed["names"]  # s1 is unnamed
    assert "digits: tenant vision" in printed["digits"] and "s1" not in printed["digits"]


@pytest.mark.memory
def test_a_cli_change_is_the_owners_only_and_stamped_with_its_tenant(
    tmp_path: Path,
    memory_settings: Settings,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:
    teams = write_two_teams(tmp_path)
    db = _folded(tmp_path)
    for key, value in {"KAFKA_BOOTSTRAP_SERVERS": memory_settings.kafka_bootstrap_servers,
                       "TENANTS_FILE": str(teams.path), "TENANT": "speech",
                       "HOME": str(tmp_path / "home")}.items():  # fmt: skip
        monkeypatch.setenv(f"SPARKTRAINER_{key}", str(value))
    argv = ["models", "archive", "v1", "--db", str(db), "--no-sync", "--json"]
    assert main(argv) == 2  # speech, from SPARKTRAINER_TENANT: not v1's owner
    assert "Model 'v1' belongs to tenant 'vision', not to 'speech'" in capsys.readouterr().err
    assert main([*argv, "--tenant", "vision", "--actor", "ops"]) == 0
    [record] = asyncio.run(read_all(memory_settings, (MODELS_CHANGES,)))
    published = decode_received(record)
    assert isinstance(published, ModelArchived)
    assert (published.tenant, published.by, published.actor) == ("vision", "vision (ops)", "ops")
