"""Replay against the real broker: ranges, filters, dry runs, and the registry staying put."""

from __future__ import annotations

import asyncio
import time
from pathlib import Path

import pytest

from sparktrainer.bus.kafka import ensure_topics, make_producer
from sparktrainer.bus.reader import LogReader
from sparktrainer.contracts.envelope import REPLAY_HEADER, header_map
from sparktrainer.contracts.events import JobRejected, RecordSource
from sparktrainer.contracts.topics import JOBS_SUBMITTED, MODELS_REGISTERED
from sparktrainer.registry import db as registry_db
from sparktrainer.registry import store
from sparktrainer.registry.jobs import get_job
from sparktrainer.registry.models import list_models
from sparktrainer.registry.runner import Projector
from sparktrainer.replay.engine import rejected_sources, replay
from sparktrainer.replay.spec import ReplayError, ReplaySpec
from tests.conftest import own_stack_fixture
from tests.integration.registry_kit import model, progress, publish, started, unique, validated

pytestmark = pytest.mark.integration
stack = own_stack_fixture()  # these tests fold and replay the whole log


async def make_topic(settings, records: list[tuple[int, bytes | None, bytes, list]]) -> str:
    """A fresh topic holding ``(partition, key, value, headers)`` records, in order."""
    topic = unique("scratch")
    await ensure_topics(settings, (topic,))
    producer = make_producer(settings)
    await producer.start()
    try:
        for partition, key, value, headers in records:
            await producer.send_and_wait(
                topic, value, key=key, partition=partition, headers=headers
            )
    finally:
        await producer.stop()
    return topic


async def read_all(settings, topic: str) -> list:
    """Every record of a topic now, by partition then offset."""
    async with LogReader(settings) as reader:
        tps = await reader.partitions((topic,))
        ends = await reader.ends(tps)
        await reader.assign_at_beginning(tps)
        out = [r async for batch in reader.read_range(ends, timeout_ms=200) for r in batch]
    return sorted(out, key=lambda r: (r.partition, r.offset))


def rec(i: int, job: str = "j") -> tuple[bytes, bytes, list]:
    return f"{job}{i % 2}".encode(), f'{{"n": {i}}}'.encode(), [("ce_type", f"t{i % 3}".encode())]


@pytest.fixture(scope="module")
async def source(stack) -> str:
    """Six records on partition 0 (offsets 0-5) and two on partition 1."""
    return await make_topic(
        stack, [(0, *rec(i)) for i in range(6)] + [(1, *rec(i)) for i in (6, 7)]
    )


async def test_offset_range_keeps_key_value_headers_and_marks_the_origin(stack, source) -> None:
    dest = unique("dest")
    spec = ReplaySpec(source=source, to=dest, from_offset={0: 2}, to_offset={0: 4, 1: 0})
    stats = await replay(stack, spec)
    assert (stats.matched, stats.sent) == (4, 4)  # p0: 2, 3, 4; p1: 0
    got = await read_all(stack, dest)
    originals = {(r.partition, r.offset): r for r in await read_all(stack, source)}
    assert sorted(header_map(r.headers)[REPLAY_HEADER] for r in got) == sorted(
        [f"{source}/0/{o}" for o in (2, 3, 4)] + [f"{source}/1/0"]
    )
    for r in got:
        _, p, o = header_map(r.headers)[REPLAY_HEADER].rsplit("/", 2)
        orig = originals[(int(p), int(o))]
        assert (r.key, r.value) == (orig.key, orig.value)
        assert [h for h in r.headers if h[0] != REPLAY_HEADER] == list(orig.headers)


async def test_one_offset_for_all_partitions_and_partition_choice(stack, source) -> None:
    spec = ReplaySpec(source=source, from_offset=1, dry_run=True)
    assert (await replay(stack, spec)).matched == 5 + 1
    spec = ReplaySpec(source=source, partitions=(1,), dry_run=True)
    assert (await replay(stack, spec)).matched == 2


async def test_filters_by_type_key_and_job_id(stack, source) -> None:
    seen: list[str] = []
    spec = ReplaySpec(source=source, types=("t0",), dry_run=True)
    await replay(stack, spec, on_record=lambda p: seen.append(p.origin))
    assert sorted(seen) == [f"{source}/0/0", f"{source}/0/3", f"{source}/1/0"]  # n = 0, 3, 6
    assert (await replay(stack, ReplaySpec(source=source, keys=("j1",), dry_run=True))).matched == 4
    both = ReplaySpec(source=source, keys=("j1",), types=("t1",), dry_run=True)
    assert (await replay(stack, both)).matched == 2  # n = 1, 7
    job = ReplaySpec(source=source, job_ids=("j0",), limit=2, dry_run=True)
    assert (await replay(stack, job)).matched == 2


async def test_time_window_filters_by_record_timestamp(stack) -> None:
    topic = await make_topic(stack, [(0, *rec(i)) for i in range(3)])
    await asyncio.sleep(1.1)
    middle_ms = int(time.time() * 1000)
    await asyncio.sleep(0.1)
    producer = make_producer(stack)
    await producer.start()
    for i in range(3, 5):
        await producer.send_and_wait(topic, rec(i)[1], key=rec(i)[0], partition=0)
    await producer.stop()
    after = await replay(stack, ReplaySpec(source=topic, since_ms=middle_ms, dry_run=True))
    before = await replay(stack, ReplaySpec(source=topic, until_ms=middle_ms, dry_run=True))
    assert (after.matched, before.matched) == (2, 3)
    future = await replay(
        stack, ReplaySpec(source=topic, since_ms=middle_ms + 3_600_000, dry_run=True)
    )
    assert future.matched == 0


async def test_dry_run_changes_nothing(stack, source) -> None:
    before = await read_all(stack, source)
    shown: list[str] = []
    stats = await replay(
        stack, ReplaySpec(source=source, dry_run=True), on_record=lambda p: shown.append(p.origin)
    )
    assert (stats.matched, stats.sent, len(shown)) == (8, 0, 8)
    assert len(await read_all(stack, source)) == len(before)


async def test_replay_onto_itself_stops_at_the_end_it_saw(stack) -> None:
    topic = await make_topic(stack, [(0, *rec(i)) for i in range(3)])
    stats = await replay(stack, ReplaySpec(source=topic))
    assert stats.sent == 3 and len(await read_all(stack, topic)) == 6


async def test_rate_limit(stack, source) -> None:
    started_at = time.monotonic()
    stats = await replay(stack, ReplaySpec(source=source, to=unique("dest"), rate_per_s=20))
    assert stats.sent == 8 and time.monotonic() - started_at >= 7 / 20


async def test_unknown_topic_and_bad_rate_are_errors(stack) -> None:
    with pytest.raises(ReplayError, match="does not exist"):
        await replay(stack, ReplaySpec(source=unique("missing"), dry_run=True))
    with pytest.raises(ReplayError, match="rate"):
        await replay(stack, ReplaySpec(source="x", rate_per_s=0))


async def models_of(settings, db: Path, tag: str) -> tuple[list[dict], int]:
    """The models with a tag after catching up, and how many records that catch-up applied."""
    async with Projector(settings, db) as projector:
        applied = await projector.catch_up()
    conn = store.connect(db)
    try:
        return list_models(conn, tag=tag, limit=1000).items, applied
    finally:
        conn.close()


async def test_replaying_registrations_leaves_the_models_list_unchanged(stack, tmp_path) -> None:
    tag = unique("tag")
    ids = [unique("m") for _ in range(3)]
    await publish(stack, *(model(i, tags=[tag]) for i in ids))
    db = tmp_path / "r.db"
    before, _ = await models_of(stack, db, tag)
    assert sorted(m["model_id"] for m in before) == sorted(ids)
    stats = await replay(stack, ReplaySpec(source=MODELS_REGISTERED, keys=tuple(ids)))
    assert stats.sent == 3
    after, applied = await models_of(stack, db, tag)
    assert after == before
    assert applied >= 3  # the copies were folded (new offsets), and changed nothing


async def test_rebuild_from_the_log_gives_the_same_read_model(stack, tmp_path) -> None:
    tag = unique("tag")
    job = unique("job")
    await publish(
        stack,
        model(unique("m"), tags=[tag]),
        model(unique("m"), tags=[tag]),
        validated(job),
        started(job),
        progress(job, 1),
    )
    incremental = tmp_path / "inc.db"
    await models_of(stack, incremental, tag)
    await publish(stack, model(unique("m"), tags=[tag]))
    await models_of(stack, incremental, tag)
    async with Projector(stack, incremental) as projector:
        await projector.catch_up()
    rebuilt = tmp_path / "rebuilt.db"
    projector = Projector(stack, rebuilt)
    await projector.start(rebuild=True)
    await projector.catch_up()
    await projector.close()
    a, b = store.connect(incremental), store.connect(rebuilt)
    try:
        assert list_models(a, limit=1000) == list_models(b, limit=1000)
        assert list_models(a, tag=tag).total == 3
        assert get_job(a, job) == get_job(b, job)
        assert registry_db.stored_offsets(a) == registry_db.stored_offsets(b)
    finally:
        a.close()
        b.close()
    # --rebuild on a populated database starts over and lands on the same rows.
    again = Projector(stack, incremental)
    await again.start(rebuild=True)
    await again.catch_up()
    await again.close()
    assert again.stats.applied == again.stats.records > 0


async def test_only_rejected_picks_submissions_still_rejected(stack) -> None:
    producer = make_producer(stack)
    await producer.start()
    try:
        coords = []
        for _ in range(2):
            meta = await producer.send_and_wait(JOBS_SUBMITTED, b'{"type": "train"}')
            coords.append((meta.partition, meta.offset))
    finally:
        await producer.stop()
    bad, fixed = unique("bad"), unique("fixed")
    events = [
        JobRejected(
            job_id=job,
            errors=["no"],
            source=RecordSource(topic=JOBS_SUBMITTED, partition=p, offset=o),
        )
        for job, (p, o) in zip((bad, fixed), coords, strict=True)
    ]
    await publish(stack, *events, validated(fixed))
    picked = await rejected_sources(stack, JOBS_SUBMITTED)
    assert coords[0] in picked and coords[1] not in picked
    seen: list[str] = []
    spec = ReplaySpec(source=JOBS_SUBMITTED, only=picked, dry_run=True)
    await replay(stack, spec, on_record=lambda p: seen.append(p.origin))
    assert f"{JOBS_SUBMITTED}/{coords[0][0]}/{coords[0][1]}" in seen
    assert f"{JOBS_SUBMITTED}/{coords[1][0]}/{coords[1][1]}" not in seen
