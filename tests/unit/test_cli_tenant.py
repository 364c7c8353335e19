"""The CLI acts for --tenant or SPARKTRAINER_TENANT, a tenant the tenants file lists: its
registry changes, submit's door and its cancels."""

from __future__ import annotations

from argparse import Namespace
from pathlib import Path

import pytest

from sparktrainer.cli.common import CliError, acting_tenant
from sparktrainer.settings import Settings
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
