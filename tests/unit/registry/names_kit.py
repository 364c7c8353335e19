"""A small log for the names and retirement tests: records per partition, folded in any order."""

from __future__ import annotations

import random
import sqlite3
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any

from test_registry_fold import registered  # type: ignore[import-not-found]

from sparktrainer.contracts import topics as t
from sparktrainer.contracts.events import ModelRegistered
from sparktrainer.contracts.model_events import ModelAliasSet
from sparktrainer.registry import names, store
from sparktrainer.registry.fold import Folded, apply_many
from sparktrainer.registry.models import list_models

T0 = datetime(2026, 1, 1, tzinfo=UTC)


def at(seconds: float) -> datetime:
    return T0 + timedelta(seconds=seconds)


def named(model_id: str, name: str | None, t: float = 0, **kw: Any) -> ModelRegistered:
    """A registration as the trainer announces it, under ``register_as`` = name."""
    return registered(model_id, register_as=name, created_at=at(t), **kw)


def alias(
    name: str, alias_: str, version: int, t: float, by: str = "alice", tenant: str = "default"
) -> ModelAliasSet:
    return ModelAliasSet(name=name, alias=alias_, version=version, by=by, at=at(t), tenant=tenant)


@dataclass
class Log:
    """Partitions of the registry topics, as lists of events in offset order."""

    parts: dict[tuple[str, int], list[Any]] = field(default_factory=dict)

    def add(self, event: Any, partition: int = 0) -> None:
        self.parts.setdefault((event.topic, partition), []).append(event)

    def interleaved(self, seed: int) -> list[Folded]:
        """Every record once, each partition in its order, partitions mixed by ``seed``."""
        rng, cursors = random.Random(seed), dict.fromkeys(self.parts, 0)
        out: list[Folded] = []
        while any(cursors[p] < len(self.parts[p]) for p in cursors):
            p = rng.choice([p for p in cursors if cursors[p] < len(self.parts[p])])
            out.append(Folded(p[0], p[1], cursors[p], self.parts[p][cursors[p]]))
            cursors[p] += 1
        return out

    def folded(self, seed: int = 0) -> sqlite3.Connection:
        conn = store.connect(":memory:")
        apply_many(conn, self.interleaved(seed))
        return conn


def snapshot(conn: sqlite3.Connection, name: str) -> dict[str, Any]:
    """What a name looks like: versions, aliases, every alias's history, the models list."""
    detail = names.get_name(conn, name)
    page = list_models(conn, status="all", limit=1000)
    return {
        "name": detail,
        "history": names.alias_history(conn, name),
        "models": [(m["model_id"], m["registered_name"], m["version"], m["status"],
                    m["aliases"]) for m in page.items],
    }  # fmt: skip


REGISTERED, CHANGES = t.MODELS_REGISTERED, t.MODELS_CHANGES
