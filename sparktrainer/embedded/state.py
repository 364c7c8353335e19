"""home/stack.json: the ports, addresses and processes of a stack (never its secrets)."""

from __future__ import annotations

import contextlib
import fcntl
import json
import os
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

from sparktrainer.embedded.processes import ProcessRecord, StackError

STATE_FILE = "stack.json"
Mode = Literal["embedded", "external"]


@dataclass
class StackState:
    """What stack.json holds; ports stay after `down` so the next `up` reuses them."""

    mode: Mode = "embedded"
    ports: dict[str, int] = field(default_factory=dict)
    processes: dict[str, ProcessRecord] = field(default_factory=dict)
    kafka_bootstrap_servers: str | None = None
    s3_endpoint: str | None = None

    @classmethod
    def read(cls, home: Path) -> StackState:
        """The state of home, or an empty one when there is no stack.json yet."""
        path = home / STATE_FILE
        try:
            data: dict[str, Any] = json.loads(path.read_text())
        except FileNotFoundError:
            return cls()
        except (OSError, ValueError) as e:
            raise StackError(f"{path} is unreadable ({e}); remove it to start over") from e
        return cls(
            mode="external" if data.get("mode") == "external" else "embedded",
            ports={str(k): int(v) for k, v in data.get("ports", {}).items()},
            processes={
                name: ProcessRecord.from_json(rec)
                for name, rec in data.get("processes", {}).items()
            },
            kafka_bootstrap_servers=data.get("kafka_bootstrap_servers"),
            s3_endpoint=data.get("s3_endpoint"),
        )

    def write(self, home: Path) -> None:
        """Replace home/stack.json atomically."""
        home.mkdir(parents=True, exist_ok=True)
        data = {
            "version": 1,
            "home": str(home),
            "mode": self.mode,
            "kafka_bootstrap_servers": self.kafka_bootstrap_servers,
            "s3_endpoint": self.s3_endpoint,
            "ports": self.ports,
            "processes": {name: rec.to_json() for name, rec in self.processes.items()},
        }
        tmp = home / f".{STATE_FILE}.{os.getpid()}.tmp"
        tmp.write_text(json.dumps(data, indent=2) + "\n")
        tmp.replace(home / STATE_FILE)


@contextlib.contextmanager
def home_lock(home: Path) -> Iterator[None]:
    """One start or stop at a time per home (two racing `up`s would pick different ports)."""
    home.mkdir(parents=True, exist_ok=True)
    with (home / ".lock").open("w") as f:
        fcntl.flock(f, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(f, fcntl.LOCK_UN)
