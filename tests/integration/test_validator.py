"""The validator: guide verdicts, bad input, S3 parent checks, a 1,000 burst, one real flow.

The validator as deployed (``build_runtime`` with the stack's S3) runs on an in-memory broker
for the guide verdicts, the parent checks and the 1,000-record burst: only the transport
changes (``bus/memory``, checked against the real broker by ``tests/contract``). One small
mixed burst goes through the real broker, the flow once.

"Answered exactly once" is checked without sleeping: once the runtime has finished every
submitted record, each record's answers are acknowledged on the log, so the answer topics are
read to their ends then and counted.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import random
import time
from collections.abc import AsyncIterator

import pytest
from aiokafka import AIOKafkaProducer

from consumers.validator import build_runtime
from sparktrainer.bus.memory import forget_broker
from sparktrainer.bus.reader import LogReader
from sparktrainer.bus.runtime import ConsumerRuntime
from sparktrainer.contracts.envelope import decode
from sparktrainer.contracts.events import JobRejected, JobValidated
from sparktrainer.contracts.topics import JOBS_REJECTED, JOBS_SUBMITTED, JOBS_VALIDATED
from sparktrainer.settings import Settings
from sparktrainer.storage.s3 import ObjectStore
from tests import guide
from tests.conftest import with_memory_bus
from tests.integration.tap import producer_for

pytestmark = pytest.mark.integration  # S3 is the stack's; Kafka is in memory unless named real

Validator = tuple[ConsumerRuntime, AIOKafkaProducer, Settings]
Coords = tuple[int, int]


@pytest.fixture(scope="module")
async def validator(stack: Settings) -> AsyncIterator[Validator]:
    """The validator on an in-memory broker of this module's own, with a bucket of its own."""
    bus = await asyncio.to_thread(with_memory_bus, stack)
    try:
        async with running_validator(bus, "test-validator") as running:
            yield running
    finally:
        forget_broker(bus.kafka_ready())


@contextlib.asynccontextmanager
async def running_validator(settings: Settings, group_id: str) -> AsyncIterator[Validator]:
    """The validator runtime and a producer on ``settings``, from the end of jobs.submitted."""
    runtime = build_runtime(
        settings,
        ObjectStore.from_settings(settings),
        group_id=group_id,
        consumer_options={"auto_offset_reset": "latest"},
    )
    task = asyncio.create_task(runtime.run())
    producer = producer_for(settings)
    try:
        await runtime.wait_positioned()
        await producer.start()
        yield runtime, producer, settings
    finally:
        await producer.stop()
        runtime.stop()
        await asyncio.wait_for(task, 60)


async def answers_to(validator: Validator, bodies: list[bytes | dict], timeout_s: float = 120.0):
    """Submit ``bodies`` at once; every answer to each of them, by submission (in order)."""
    runtime, producer, settings = validator
    async with LogReader(settings) as reader:
        await reader.assign_at_end(await reader.partitions((JOBS_VALIDATED, JOBS_REJECTED)))
        before = runtime.stats.records_done
        values = [json.dumps(b).encode() if isinstance(b, dict) else b for b in bodies]
        futures = [await producer.send(JOBS_SUBMITTED, v) for v in values]
        coords = [(m.partition, m.offset) for m in await asyncio.gather(*futures)]
        deadline = time.monotonic() + timeout_s
        while runtime.stats.records_done < before + len(coords):  # then every answer is acked
            assert time.monotonic() < deadline, f"{runtime.stats} after {timeout_s}s"
            await asyncio.sleep(0.02)
        ends = await reader.ends(reader.assignment())
        found: dict[Coords, list[JobValidated | JobRejected]] = {c: [] for c in coords}
        async for batch in reader.read_range(ends):
            for r in batch:
                event = decode(r.value, r.headers)
                source = event.source
                if source and source.topic == JOBS_SUBMITTED:
                    found.get((source.partition, source.offset), []).append(event)
    return [found[c] for c in coords]


async def _submit_and_wait(validator: Validator, bodies: list[bytes | dict]):
    """The one answer to each body (fails on none or more than one)."""
    answers = await answers_to(validator, bodies)
    assert [len(a) for a in answers] == [1] * len(bodies), "each record is answered exactly once"
    return [a for (a,) in answers]


async def test_guide_examples_verdicts(validator) -> None:
    jobs = [j for j in guide.complete_jobs() if j["config"].get("model_source") != "model_id"]
    verdicts = await _submit_and_wait(validator, jobs)
    assert all(isinstance(v, JobValidated) for v in verdicts), [
        getattr(v, "errors", None) for v in verdicts
    ]


async def test_invalid_id_example_yields_exactly_the_guide_error(validator) -> None:
    job = next(j for j in guide.examples() if j.get("config", {}).get("model_id") == "invalid-id")
    [verdict] = await _submit_and_wait(validator, [job])
    assert isinstance(verdict, JobRejected)
    assert verdict.errors == ["Model with ID 'invalid-id' not found in models directory"]
    assert verdict.valid is False


async def test_registered_parent_checks_read_s3(validator) -> None:
    store = ObjectStore.from_settings(validator[2])
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
        validator, [finetune("parent-ok"), finetune("parent-nofile"), finetune("parent-noarch")]
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


async def test_burst_of_1000_mixed_records_every_one_answered(validator) -> None:
    runtime = validator[0]
    errors = runtime.stats.handler_errors
    await check_burst(validator, _mixed_records(1000, seed=7))
    assert runtime.stats.handler_errors == errors


async def test_a_mixed_burst_through_the_real_broker_every_one_answered(
    stack: Settings, unique
) -> None:
    """The same flow once on the real broker (tansu): its own group, 40 records."""
    async with running_validator(stack, unique("validator")) as real:
        await check_burst(real, _mixed_records(40, seed=8))
        assert real[0].stats.handler_errors == 0


async def check_burst(validator: Validator, records: list[bytes]) -> None:
    """Every record answered exactly once; the good ones validated, the bad ones rejected."""
    answers = await answers_to(validator, list(records))
    assert [len(a) for a in answers] == [1] * len(records), "each answered exactly once"
    verdicts = [type(a).__name__ for (a,) in answers]
    expected = ["JobValidated" if r.startswith(b'{"name"') else "JobRejected" for r in records]
    assert verdicts == expected
    assert 0 < expected.count("JobValidated") < len(records)  # both kinds were in the burst


def test_guide_lora_example_on_a_registered_bert_names_the_right_modules(store) -> None:
    """The check alone (no broker): a LoRA config naming modules the parent does not have."""
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
