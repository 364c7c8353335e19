"""The CLI's registry changes act for SPARKTRAINER_TENANT, a tenant the tenants file lists."""

from __future__ import annotations

from pathlib import Path

import pytest

from sparktrainer.cli.common import CliError
from sparktrainer.cli.model_changes import acting_tenant
from sparktrainer.settings import Settings
from tests.tenants_kit import write_two_teams


def test_the_cli_acts_for_the_configured_tenant(tmp_path: Path) -> None:
    teams = write_two_teams(tmp_path)
    assert acting_tenant(Settings()) == "default"  # no file, no setting: the one default tenant
    assert acting_tenant(Settings(tenants_file=teams.path, tenant="speech")) == "speech"
    with pytest.raises(CliError, match="SPARKTRAINER_TENANT 'ghost' is not a tenant") as e:
        acting_tenant(Settings(tenants_file=teams.path, tenant="ghost"))
    assert "default, vision, speech" in str(e.value)
    with pytest.raises(CliError, match="SPARKTRAINER_TENANTS_FILE"):
        acting_tenant(Settings(tenants_file=tmp_path / "missing.json"))
