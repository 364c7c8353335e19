"""The validator against the real broker and S3: guide verdicts, bad input, a 1,000 burst."""

from __future__ import annotations

import asyncio
import json
import random

import pytest

from consumers.validator import build_runtime
from sparktrainer.contracts.events import JobRejected, JobValidated
from sparktrainer.contracts.topics import JOBS_REJECTED, JOBS_SUBMITTED, JOBS_VALIDATED
from sparktrainer.storage.s3 import ObjectStore
from tests import guide
from tests.integration.tap import Tap, produce, producer_for

pytestmark = pytest.mark.integration


@pytest.fixture(scope="module")
async def validator(stack):
    store = ObjectStore.from_settings(stack)
    runtime = build_runtime(
        stack, store, group_id="test-validator", consumer_options={"auto_offset_reset": "latest"}
    )
    task = asyncio.create_task(runtime.run())
    await runtime.wait_positioned()
    producer = producer_for(stack)
    await producer.start()
    yield runtime, producer
    await producer.stop()
    runtime.stop()
    await task


def _answers_for(coords: set[tuple[int, int]]):
    return lambda e: (
        isinstance(e, JobValidated | JobRejected)
        and e.source is not None
        and (e.source.topic == JOBS_SUBMITTED and (e.source.partition, e.source.offset) in coords)
    )


async def _submit_and_wait(stack, producer, bodies, timeout_s=60.0):
    async with Tap(stack, JOBS_VALIDATED, JOBS_REJECTED) as tap:
        coords = []
        for body in bodies:
            coords.append(await produce(producer, JOBS_SUBMITTED, body))
        hits = await tap.wait_for(_answers_for(set(coords)), len(coords), timeout_s)
        await asyncio.sleep(0.5)  # anything extra would show up now
        extra = [e for e in tap.events if _answers_for(set(coords))(e)]
        assert len(extra) == len(coords), "each record is answered exactly once"
    by_coord = {(e.source.partition, e.source.offset): e for e in hits}
    return [by_coord[c] for c in coords]


async def test_guide_examples_verdicts(stack, validator) -> None:
    _, producer = validator
    jobs = [j for j in guide.complete_jobs() if j["config"].get("model_source") != "model_id"]
    verdicts = await _submit_and_wait(stack, producer, jobs)
    assert all(isinstance(v, JobValidated) for v in verdicts), [
        getattr(v, "errors", None) for v in verdicts
    ]


async def test_invalid_id_example_yields_exactly_the_guide_error(stack, validator) -> None:
    _, producer = validator
    job = next(j for j in guide.examples() if j.get("config", {}).get("model_id") == "invalid-id")
    [verdict] = await _submit_and_wait(stack, producer, [job])
    assert isinstance(verdict, JobRejected)
    assert verdict.errors == ["Model with ID 'invalid-id' not found in models directory"]
    assert verdict.valid is False


async def test_registered_parent_checks_read_s3(stack, store, validator) -> None:
    _, producer = validator
    store.put_json("models/parent-ok/metadata.json", {"framework": "pytorch"})
    store.put_json("models/parent-ok/config.json", {"builder": "mlp", "params": {"input_size": 4}})
    store.put_bytes("models/parent-ok/model.pth", b"weights")
    store.put_json("models/parent-nofile/metadata.json", {"framework": "pytorch"})
    store.put_json("models/parent-noarch/metadata.json", {"framework": "pytorch"})
    store.put_json("models/parent-noarch/config.json", {"epochs": 3})
    store.put_bytes("models/parent-noarch/model.pth", b"weights")

    def finetune(model_id):
        return {
            "type": "finetune",
            "framework": "pytorch",
            "config": {"model_source": "model_id", "model_id": model_id, "num_classes": 5},
        }

    ok, nofile, noarch = await _submit_and_wait(
        stack,
        producer,
        [finetune("parent-ok"), finetune("parent-nofile"), finetune("parent-noarch")],
    )
    assert isinstance(ok, JobValidated) and ok.config.num_classes == 5
    assert nofile.errors == [
        "Model 'parent-nofile' is missing required file(s): model.pth, config.json"
    ]
    assert "incomplete architecture information" in noarch.errors[0]


def _mixed_records(n: int, seed: int) -> list[bytes]:
    rng = random.Random(seed)
    good = json.dumps(guide.by_name("Initial Model Training")).encode()
    bad = [
        b"",
        b"nope",
        b"[]",
        b"{}",
        b'{"type":"train"}',
        b"\xff" * 10,
        b'{"a":' * 50,
        json.dumps(
            {
                "type": "train",
                "framework": "pytorch",
                "config": {"architecture": "custom", "epochs": -1},
            }
        ).encode(),
    ]
    return [good if rng.random() < 0.5 else rng.choice(bad) for _ in range(n)]


async def test_burst_of_1000_mixed_records_every_one_answered(stack, validator) -> None:
    runtime, producer = validator
    records = _mixed_records(1000, seed=7)
    async with Tap(stack, JOBS_VALIDATED, JOBS_REJECTED) as tap:
        futures = [await producer.send(JOBS_SUBMITTED, value) for value in records]
        coords = {(m.partition, m.offset) for m in await asyncio.gather(*futures)}
        hits = await tap.wait_for(_answers_for(coords), len(coords), timeout_s=120)
        await asyncio.sleep(1.0)
        answers = [e for e in tap.events if _answers_for(coords)(e)]
    assert len(coords) == 1000 and len(hits) == 1000 and len(answers) == 1000
    good = sum(1 for r in records if r.startswith(b'{"name"'))
    assert sum(isinstance(e, JobValidated) for e in answers) == good
    assert runtime.stats.handler_errors == 0


def test_guide_lora_example_on_a_registered_bert_names_the_right_modules(store) -> None:
    from sparktrainer.validation.checks import validate_job

    lora = next(j for j in guide.complete_jobs() if "lora" in j["config"])
    store.put_json("models/abc123/metadata.json", {"framework": "huggingface"})
    store.put_json("models/abc123/config.json", {"model_type": "bert", "hidden_size": 32})
    store.put_bytes("models/abc123/model.safetensors", b"weights")
    result = validate_job(lora, store)
    assert not result.valid
    [error] = result.errors
    assert "q_proj" in error and "bert" in error and "'query'" in error and "'value'" in error
    # Leaving target_modules out picks the family's default instead.
    del lora["config"]["lora"]["target_modules"]
    assert validate_job(lora, store).valid
