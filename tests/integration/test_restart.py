"""A full stop and start of the embedded stack keeps models, events and offsets."""

from __future__ import annotations

import time

import pytest

from sparktrainer.bus.kafka import make_consumer, make_producer, send
from sparktrainer.contracts.envelope import encode
from sparktrainer.contracts.events import Artifact, ModelRegistered
from sparktrainer.contracts.topics import MODELS_REGISTERED
from sparktrainer.embedded import EmbeddedStack
from sparktrainer.registry.models import list_models
from sparktrainer.registry.runner import Projector
from sparktrainer.storage.s3 import ObjectStore
from tests.conftest import make_test_settings

pytestmark = [pytest.mark.integration, pytest.mark.slow]


def _model(model_id: str) -> ModelRegistered:
    return ModelRegistered(
        model_id=model_id,
        job_id=model_id,
        name=model_id,
        framework="pytorch",
        architecture={"builder": "mlp"},
        storage_prefix=f"models/{model_id}/",
        artifacts=[Artifact(path="model.pth", size_bytes=7, sha256="0" * 64)],
    )


async def _listed(settings, db) -> list[str]:
    async with Projector(settings, db) as projector:
        await projector.catch_up(timeout_s=60)
        page = list_models(projector.conn, limit=100)
    return sorted(m["model_id"] for m in page.items)


async def test_models_events_and_offsets_survive_down_and_up(tmp_path) -> None:
    stack = EmbeddedStack(tmp_path / "home", settings=make_test_settings(), services=())
    settings = stack.start()
    try:
        ObjectStore.from_settings(settings).put_bytes("models/m-1/model.pth", b"weights")
        producer = make_producer(settings)
        await producer.start()
        for model_id in ("m-1", "m-2"):
            await send(producer, encode(_model(model_id), "test"))
        await producer.stop()
        assert await _listed(settings, tmp_path / "before.sqlite3") == ["m-1", "m-2"]
        group = make_consumer(settings, MODELS_REGISTERED, group_id="restart-group")
        await group.start()
        got = await group.getmany(timeout_ms=5000)
        while sum(len(v) for v in got.values()) < 2:
            more = await group.getmany(timeout_ms=1000)
            got = {tp: got.get(tp, []) + more.get(tp, []) for tp in {*got, *more}}
        await group.commit()
        committed = {tp: await group.committed(tp) for tp in got}
        await group.stop()
    finally:
        stack.stop()

    again = EmbeddedStack(tmp_path / "home", settings=make_test_settings(), services=())
    settings = again.start()
    try:
        # A read model rebuilt from scratch after the restart finds every earlier model.
        assert await _listed(settings, tmp_path / "after.sqlite3") == ["m-1", "m-2"]
        assert ObjectStore.from_settings(settings).get_bytes("models/m-1/model.pth") == b"weights"
        group = make_consumer(settings, MODELS_REGISTERED, group_id="restart-group")
        await group.start()
        deadline = time.monotonic() + 60
        while not group.assignment():  # joined (a fixed 3 s poll waited for records never sent)
            assert time.monotonic() < deadline, "the group never assigned a partition"
            await group.getmany(timeout_ms=200)
        assert {tp: await group.committed(tp) for tp in committed} == committed
        await group.stop()
    finally:
        again.stop()
