"""Two teams and the default tenant, for tests of who asks (issue 17).

The ``two_teams`` fixture (tests/conftest.py), or ``write_two_teams(folder)``, writes a tenants
file with the teams ``vision`` and ``speech`` (each with one API token and one Kafka user)
beside the default tenant, and returns a ``TwoTeams``: the file, each team's token, door topic
and Kafka user. Point any settings at it with ``teams.settings(base)`` (``tenants_file`` and
the default tenant's API token set), or a subprocess's environment with
``{**os.environ, **teams.env()}``; send a team's HTTP requests with ``teams.auth("vision")``
and its Kafka submissions to ``teams.door("vision")``. ``DictStore`` is an ObjectStore held in
a dict, for the id claims of unit tests (no S3).
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from sparktrainer.contracts.tenants import token_digest
from sparktrainer.contracts.topics import submission_topic
from sparktrainer.errors import ObjectNotFound
from sparktrainer.settings import Settings
from sparktrainer.storage.s3 import ObjectStore

TEAMS = ("vision", "speech")


@dataclass(frozen=True)
class TwoTeams:
    """A tenants file of two teams; their tokens, doors and Kafka users."""

    path: Path
    tokens: dict[str, str]  # tenant -> its API token (the file holds only the sha256)
    default_token: str  # SPARKTRAINER_API_TOKEN: the default tenant's

    def door(self, tenant: str) -> str:
        """The topic the tenant submits on."""
        return submission_topic(tenant)

    def kafka_user(self, tenant: str) -> str:
        """The Kafka user the file gives the tenant."""
        return f"{tenant}-ci"

    def settings(self, base: Settings) -> Settings:
        """``base`` with this tenants file and the default tenant's API token."""
        return base.model_copy(
            update={"tenants_file": self.path, "api_token": self.default_token_secret()}
        )

    def env(self) -> dict[str, str]:
        """The environment that gives a service process (or the CLI) this file and token."""
        return {"SPARKTRAINER_TENANTS_FILE": str(self.path),
                "SPARKTRAINER_API_TOKEN": self.default_token}  # fmt: skip

    def default_token_secret(self) -> Any:
        """The default tenant's token as settings hold it (a SecretStr)."""
        return Settings(api_token=self.default_token).api_token

    def auth(self, tenant: str) -> dict[str, str]:
        """The Authorization header of one tenant's requests."""
        token = self.default_token if tenant == "default" else self.tokens[tenant]
        return {"Authorization": f"Bearer {token}"}


def write_two_teams(
    folder: Path, max_priority: str = "normal", teams: tuple[str, str] = TEAMS
) -> TwoTeams:
    """A tenants file under ``folder``: vision and speech (or ``teams``; ``max_priority`` each),
    and default."""
    tokens = {name: f"{name}-token-{folder.name}" for name in teams}
    tenants = [
        {
            "name": name,
            "max_priority": max_priority,
            "kafka_users": [f"{name}-ci"],
            "token_sha256": [token_digest(tokens[name])],
        }
        for name in teams
    ]
    path = folder / "tenants.json"
    path.write_text(json.dumps({"tenants": tenants}))
    return TwoTeams(path=path, tokens=tokens, default_token=f"default-token-{folder.name}")


class DictStore(ObjectStore):
    """An ObjectStore in a dict: enough for claims and outcome records in unit tests."""

    def __init__(self) -> None:
        self.objects: dict[str, bytes] = {}

    def put_bytes(
        self, key: str, data: bytes, content_type: str = "application/octet-stream"
    ) -> None:
        self.objects[key] = data

    def get_bytes(self, key: str) -> bytes:
        if key not in self.objects:
            raise ObjectNotFound(key)
        return self.objects[key]
