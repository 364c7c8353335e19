"""The janitor on the in-memory broker: an alias keeps a deleted model's files; records it
cannot read (a naive ``at``, a time far ahead) are skipped and it goes on."""

from __future__ import annotations

import asyncio
import json
import time
from collections.abc import Callable
from datetime import UTC, datetime

import pytest

from sparktrainer.bus.kafka import make_producer, send
from sparktrainer.contracts.envelope import encode
from sparktrainer.contracts.model_events import (
    ModelAliasRemoved,
    ModelAliasSet,
    ModelDeleted,
    ModelPurged,
)
from sparktrainer.contracts.topics import MODELS_CHANGES
from sparktrainer.services.janitor import Janitor
from sparktrainer.settings import Settings
from tests.integration.registry_kit import model

pytestmark = pytest.mark.memory
WAIT_S = 20.0


class Files:
    """The bucket as the janitor uses it (exists, delete, delete by prefix), in a dict."""

    def __init__(self, *keys: str) -> None:
        self.keys = set(keys)

    def exists(self, key: str) -> bool:
        return key in self.keys

    def delete(self, key: str) -> None:
        self.keys.discard(key)

    def delete_prefix(self, prefix: str) -> int:
        gone = {k for k in self.keys if k.startswith(prefix)}
        self.keys -= gone
        return len(gone)


async def until(check: Callable[[], bool], what: str) -> None:
    """Poll the janitor's counters (it has no event to await) until ``check`` holds."""
    deadline = time.monotonic() + WAIT_S
    while not check():
        assert time.monotonic() < deadline, f"not within {WAIT_S} s: {what}"
        await asyncio.sleep(0.02)


async def test_an_alias_keeps_a_deleted_models_files_and_hostile_times_are_skipped(
    memory_settings: Settings,
) -> None:
    settings = memory_settings.model_copy(
        update={"model_delete_grace_s": 0.0, "janitor_interval_s": 0.05}
    )
    files = Files("models/m1/metadata.json", "models/m1/model.pth", "models/m2/model.pth")
    producer = make_producer(settings)
    await producer.start()
    janitor = Janitor(settings, files, producer)  # type: ignore[arg-type]
    task = asyncio.create_task(janitor.run())
    try:
        await send(producer, encode(model("m1", register_as="digits"), "test"))
        await send(producer, encode(ModelAliasSet(name="digits", alias="prod", version=1), "t"))
        # Hostile deletions the API would refuse: dated 1970 (seen now, grace 0: due), one with
        # a time-zone-less at, one dated ahead of its record. Only the first is a deletion.
        old = ModelDeleted(model_id="m1", at=datetime(1970, 1, 1, tzinfo=UTC))
        await send(producer, encode(old, "intruder"))
        for at in ("2026-12-07T14:00:00", "9999-01-01T00:00:00Z"):
            record = encode(ModelDeleted(model_id="m2"), "intruder")
            body = {**json.loads(record.value), "at": at}
            value = json.dumps(body).encode()
            await send(producer, type(record)(record.topic, record.key, value, record.headers))
        await until(lambda: janitor.stats.kept_for_alias >= 2, "the alias keeps m1 twice")
        assert files.exists("models/m1/model.pth") and files.exists("models/m2/model.pth")
        assert janitor.stats.purged == 0 and janitor.skipped.counts["unreadable"] == 2
        assert janitor.held == {"m1"}  # logged once however many sweeps keep it

        await send(producer, encode(ModelAliasRemoved(name="digits", alias="prod"), "test"))
        await until(lambda: janitor.stats.purged == 1, "m1 purged once its alias is gone")
        assert files.keys == {"models/m2/model.pth"} and not task.done()
        assert janitor.purged == {"m1": {"default"}}  # announced in the owner's name
        assert MODELS_CHANGES == ModelPurged.topic  # the purge is announced where it was read
    finally:
        task.cancel()
        await asyncio.gather(task, return_exceptions=True)
        await producer.stop()


async def test_a_deletion_forged_by_another_tenant_removes_nothing(
    memory_settings: Settings,
) -> None:
    settings = memory_settings.model_copy(
        update={"model_delete_grace_s": 0.0, "janitor_interval_s": 0.05}
    )
    files = Files("models/v1/metadata.json", "models/v1/model.pth")
    producer = make_producer(settings)
    await producer.start()
    janitor = Janitor(settings, files, producer)  # type: ignore[arg-type]
    task = asyncio.create_task(janitor.run())
    try:
        await send(producer, encode(model("v1", tenant="vision"), "test"))
        forged = ModelDeleted(model_id="v1", tenant="speech", by="vision")  # a claimed by
        await send(producer, encode(forged, "intruder"))
        await send(producer, encode(ModelPurged(model_id="v1", tenant="speech",
                                                files_removed=0), "intruder"))  # fmt: skip
        await until(lambda: janitor.stats.foreign == 1 and janitor.stats.sweeps >= 2, "skipped")
        assert files.exists("models/v1/model.pth") and janitor.stats.purged == 0
        await send(producer, encode(ModelDeleted(model_id="v1", tenant="vision"), "test"))
        await until(lambda: janitor.stats.purged == 1, "v1 purged once its owner deleted it")
        assert files.keys == set() and janitor.purged["v1"] == {"speech", "vision"}
        assert not task.done()
    finally:
        task.cancel()
        await asyncio.gather(task, return_exceptions=True)
        await producer.stop()


class BrokenFor(Files):
    """A bucket whose deletes of one model fail with an error no one planned for."""

    def __init__(self, broken: str, *keys: str) -> None:
        super().__init__(*keys)
        self.broken = broken

    def delete_prefix(self, prefix: str) -> int:
        if prefix.startswith(f"models/{self.broken}/"):
            raise RuntimeError("the store's client has a bug")
        return super().delete_prefix(prefix)


async def test_a_purge_that_raises_is_counted_once_and_the_janitor_goes_on(
    memory_settings: Settings,
) -> None:
    settings = memory_settings.model_copy(
        update={"model_delete_grace_s": 0.0, "janitor_interval_s": 0.05}
    )
    files = BrokenFor("m1", "models/m1/model.pth", "models/m2/model.pth")
    producer = make_producer(settings)
    await producer.start()
    janitor = Janitor(settings, files, producer)  # type: ignore[arg-type]
    task = asyncio.create_task(janitor.run())
    try:
        for model_id in ("m1", "m2"):
            await send(producer, encode(model(model_id), "test"))
            await send(producer, encode(ModelDeleted(model_id=model_id), "test"))
        await until(lambda: janitor.faults.errors[("janitor", "RuntimeError")] >= 2, "2 sweeps")
        assert files.keys == {"models/m1/model.pth"} and janitor.purged == {"m2": {"default"}}
        assert not task.done()  # the next sweep tries m1 again; nothing killed the janitor
    finally:
        task.cancel()
        await asyncio.gather(task, return_exceptions=True)
        await producer.stop()
