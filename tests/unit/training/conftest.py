"""Unit-test support for training: an in-memory object store and job contexts on it."""

from __future__ import annotations

import json
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

from sparktrainer.contracts.events import JobValidated
from sparktrainer.contracts.jobspec import CONFIG_KINDS
from sparktrainer.errors import ObjectNotFound
from sparktrainer.settings import Settings
from sparktrainer.training.context import JobContext


class MemoryStore:
    """The slice of ObjectStore the recipes use, in a dict (unit tests only)."""

    def __init__(self) -> None:
        self.bucket = "sparktrainer"
        self.objects: dict[str, bytes] = {}
        self.puts: list[str] = []

    def put_bytes(self, key: str, data: bytes, content_type: str = "") -> None:
        self.objects[key] = bytes(data)
        self.puts.append(key)

    def put_json(self, key: str, obj: Any) -> None:
        self.put_bytes(key, json.dumps(obj).encode())

    def put_file(self, key: str, path: Path) -> None:
        self.put_bytes(key, path.read_bytes())

    def get_bytes(self, key: str) -> bytes:
        if key not in self.objects:
            raise ObjectNotFound(f"get {key}: NoSuchKey")
        return self.objects[key]

    def get_json(self, key: str) -> Any:
        return json.loads(self.get_bytes(key))

    def get_file(self, key: str, path: Path) -> None:
        path.write_bytes(self.get_bytes(key))

    def exists(self, key: str) -> bool:
        return key in self.objects

    def list(self, prefix: str, recursive: bool = True) -> Iterator[str]:
        return iter(sorted(k for k in self.objects if k.startswith(prefix)))

    def delete_prefix(self, prefix: str) -> int:
        keys = list(self.list(prefix))
        for key in keys:
            del self.objects[key]
        return len(keys)


def make_job(
    job_id: str, kind: str, config: dict[str, Any], job_type: str = "train"
) -> JobValidated:
    """A validated job with its config normalized the way the validator does."""
    normalized = CONFIG_KINDS[kind].model_validate(config).model_dump(mode="json")
    framework = "huggingface" if kind == "huggingface" else "pytorch"
    return JobValidated(
        job_id=job_id,
        name=job_id,
        type=job_type,
        framework=framework,
        config_kind=kind,
        config=normalized,
    )


@pytest.fixture
def memstore() -> MemoryStore:
    return MemoryStore()


@pytest.fixture
def make_ctx(tmp_path: Path, memstore: MemoryStore) -> Callable[..., JobContext]:
    """Build a JobContext on the memory store; its events land in ``ctx.events``."""

    def build(
        job_id: str,
        kind: str,
        config: dict[str, Any],
        *,
        attempt: int = 1,
        job_type: str = "train",
        progress_every_s: float = 0.0,
    ) -> JobContext:
        events: list[Any] = []
        workdir = tmp_path / f"{job_id}-{attempt}"
        workdir.mkdir()
        ctx = JobContext(
            job=make_job(job_id, kind, config, job_type),
            store=memstore,  # type: ignore[arg-type]
            settings=Settings(progress_every_s=progress_every_s),
            workdir=workdir,
            emit=events.append,
            attempt=attempt,
        )
        ctx.events = events  # type: ignore[attr-defined]
        return ctx

    return build


@pytest.fixture
def stored(memstore: MemoryStore, tmp_path: Path) -> Callable[[str, str], Any]:
    """Read a stored model file: JSON parsed, .pth through the weights-only loader."""
    from sparktrainer.training.checkpoint import safe_load

    def read(model_id: str, name: str) -> Any:
        key = f"models/{model_id}/{name}"
        if name.endswith(".json"):
            return memstore.get_json(key)
        local = tmp_path / f"read-{model_id}-{name}"
        local.write_bytes(memstore.get_bytes(key))
        return safe_load(local, key)

    return read
