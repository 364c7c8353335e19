"""Where an embedded stack's things are: its home, ports, addresses and the settings for them.

``EmbeddedStack`` (``stack.py``) adds starting and stopping; this half only reads.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from pydantic import SecretStr

from sparktrainer.embedded import servers
from sparktrainer.embedded.processes import StackError
from sparktrainer.embedded.servers import Credentials
from sparktrainer.embedded.state import Mode, StackState
from sparktrainer.settings import Settings


class StackAddresses:
    """A stack's home folder and what its state file says about where its servers listen."""

    home: Path
    settings: Settings
    external: bool
    _explicit_ports: dict[str, int]
    _state: StackState

    @property
    def mode(self) -> Mode:
        """Whether this stack runs its own servers ("embedded") or uses "external" ones."""
        return "external" if self.external else "embedded"

    @property
    def logs_dir(self) -> Path:
        """home/logs: one NAME.log per process."""
        return self.home / "logs"

    @property
    def ports(self) -> dict[str, int]:
        """Ports by name (s3, master, volume, filer, admin, kafka); empty before the first start."""
        return {**self._state.ports, **self._explicit_ports}

    @property
    def kafka_bootstrap_servers(self) -> str:
        """host:port of the broker."""
        if self.external:
            return self.settings.kafka_bootstrap_servers or str(self._state.kafka_bootstrap_servers)
        return f"127.0.0.1:{self._port('kafka')}"

    @property
    def s3_endpoint(self) -> str:
        """URL of the S3 server."""
        if self.external:
            return self.settings.s3_endpoint or str(self._state.s3_endpoint)
        return f"http://127.0.0.1:{self._port('s3')}"

    @property
    def dashboard_url(self) -> str | None:
        """Where the API serves the dashboard (None when the stack runs no API)."""
        port = self.ports.get("api")
        return f"http://127.0.0.1:{port}/" if port else None

    def metrics_urls(self) -> dict[str, str]:
        """Each service's Prometheus endpoint, by service."""
        urls = {name.removesuffix("_metrics"): f"http://127.0.0.1:{port}/metrics"
                for name, port in self.ports.items() if name.endswith("_metrics")}  # fmt: skip
        if self.dashboard_url:
            urls["api"] = self.dashboard_url + "metrics"
        return urls

    def _port(self, name: str) -> int:
        if name not in self.ports:
            raise StackError(f"the stack in {self.home} has no ports yet: start it first")
        return self.ports[name]

    def credentials(self) -> Credentials:
        """The S3 keys of this home, created (0600) on first use."""
        return servers.load_credentials(self.home)

    def settings_for(
        self, base: Settings | None = None, *, fill_missing_only: bool = False
    ) -> Settings:
        """Settings pointing at this stack; with fill_missing_only, addresses already set win."""
        base = base or self.settings
        if self.external:
            return base
        update: dict[str, Any] = {}
        if not (fill_missing_only and base.kafka_bootstrap_servers):
            update["kafka_bootstrap_servers"] = self.kafka_bootstrap_servers
        if not (fill_missing_only and base.s3_endpoint):  # the keys go with their server
            keys = self.credentials()
            update |= {
                "s3_endpoint": self.s3_endpoint,
                "s3_access_key": SecretStr(keys.access_key),
                "s3_secret_key": SecretStr(keys.secret_key),
                "s3_secure": False,
            }
        return base.model_copy(update=update)

    def env(self) -> dict[str, str]:
        """SPARKTRAINER_* variables that point a child process at this stack."""
        settings = self.settings_for()
        env = {
            "SPARKTRAINER_KAFKA_BOOTSTRAP_SERVERS": settings.kafka_ready(),
            "SPARKTRAINER_S3_ENDPOINT": str(settings.s3_endpoint),
        }
        if settings.s3_access_key and settings.s3_secret_key:
            env["SPARKTRAINER_S3_ACCESS_KEY"] = settings.s3_access_key.get_secret_value()
            env["SPARKTRAINER_S3_SECRET_KEY"] = settings.s3_secret_key.get_secret_value()
        return env
