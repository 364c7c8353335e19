"""aiokafka clients built from settings: one place for security, timeouts and topics.

``kafka_bootstrap_servers="memory://<name>"`` builds the in-memory broker's clients instead
(``bus/memory``): the same calls, typed as the aiokafka clients whose API they implement (the
part this code uses; ``tests/contract`` runs it on both).
"""

from __future__ import annotations

import asyncio
import ssl
from typing import Any, cast

import structlog
from aiokafka import AIOKafkaConsumer, AIOKafkaProducer, ConsumerRecord, TopicPartition
from aiokafka.admin import AIOKafkaAdminClient, NewTopic
from aiokafka.errors import KafkaConnectionError, KafkaError, TopicAlreadyExistsError

from sparktrainer.bus.memory_url import is_memory_url
from sparktrainer.contracts.envelope import OutRecord
from sparktrainer.contracts.records import Received
from sparktrainer.contracts.topics import ALL_TOPICS
from sparktrainer.settings import Settings

log = structlog.get_logger(__name__)


def client_options(settings: Settings) -> dict[str, Any]:
    """Connection and security options shared by every aiokafka client."""
    opts: dict[str, Any] = {"bootstrap_servers": settings.kafka_ready()}
    protocol: str = settings.kafka_security_protocol or _implied_protocol(settings)
    opts["security_protocol"] = protocol
    if protocol in ("SSL", "SASL_SSL"):
        opts["ssl_context"] = ssl.create_default_context(
            cafile=str(settings.kafka_ssl_cafile) if settings.kafka_ssl_cafile else None
        )
    if protocol.startswith("SASL"):
        opts["sasl_mechanism"] = settings.kafka_sasl_mechanism or "PLAIN"
        opts["sasl_plain_username"] = settings.kafka_sasl_username
        opts["sasl_plain_password"] = (
            settings.kafka_sasl_password.get_secret_value()
            if settings.kafka_sasl_password
            else None
        )
    return opts


def _implied_protocol(settings: Settings) -> str:
    """PLAINTEXT, SSL, SASL_PLAINTEXT or SASL_SSL, from which security settings are given."""
    sasl = settings.kafka_sasl_mechanism is not None
    tls = settings.kafka_ssl_cafile is not None
    return ("SASL_" if sasl else "") + ("SSL" if tls else "PLAINTEXT")


def make_producer(settings: Settings, **overrides: Any) -> AIOKafkaProducer:
    """A producer that waits for all in-sync replicas (not idempotent: tansu lacks it).

    A record above the message limit fails at once with ``MessageSizeTooLargeError`` (not
    retriable) instead of being sent for the broker to refuse.
    """
    if is_memory_url(settings.kafka_bootstrap_servers):
        from sparktrainer.bus.memory import MemoryProducer  # tests' broker: only when named

        memory = MemoryProducer(
            bootstrap_servers=settings.kafka_ready(),
            max_request_size=settings.limits.message_bytes,
            default_partitions=settings.topic_partitions,
            **overrides,
        )
        return cast(AIOKafkaProducer, memory)
    return AIOKafkaProducer(
        **client_options(settings),
        acks="all",
        max_request_size=settings.limits.message_bytes,
        max_batch_size=settings.kafka_max_batch_bytes,
        linger_ms=2,
        **overrides,
    )


def make_consumer(
    settings: Settings, *topics: str, group_id: str | None, **overrides: Any
) -> AIOKafkaConsumer:
    """A consumer with auto-commit off: we commit ``offset + 1`` after the work is done."""
    options: dict[str, Any] = {
        "group_id": group_id,
        "enable_auto_commit": False,
        "auto_offset_reset": "earliest",
        "session_timeout_ms": settings.kafka_session_timeout_ms,
        "heartbeat_interval_ms": settings.kafka_heartbeat_interval_ms,
        "max_poll_interval_ms": settings.kafka_max_poll_interval_ms,
        "fetch_max_bytes": settings.kafka_max_request_bytes,
        "max_partition_fetch_bytes": settings.kafka_max_request_bytes,
    }
    options.update(overrides)
    if is_memory_url(settings.kafka_bootstrap_servers):
        from sparktrainer.bus.memory import MemoryConsumer

        memory = MemoryConsumer(*topics, bootstrap_servers=settings.kafka_ready(), **options)
        return cast(AIOKafkaConsumer, memory)
    return AIOKafkaConsumer(*topics, **client_options(settings), **options)


def make_admin(settings: Settings) -> AIOKafkaAdminClient:
    """An admin client (topics)."""
    if is_memory_url(settings.kafka_bootstrap_servers):
        from sparktrainer.bus.memory import MemoryAdmin

        return cast(AIOKafkaAdminClient, MemoryAdmin(bootstrap_servers=settings.kafka_ready()))
    return AIOKafkaAdminClient(**client_options(settings))


async def send(producer: AIOKafkaProducer, record: OutRecord) -> None:
    """Send one record and wait for the broker's acknowledgement."""
    await producer.send_and_wait(
        record.topic, record.value, key=record.key or None, headers=record.headers
    )


async def send_all(
    producer: AIOKafkaProducer, records: list[OutRecord]
) -> list[BaseException | None]:
    """Send every record, then wait for all the acknowledgements: each record's error or None.

    One future per record rather than a task per ``send_and_wait``: a batch costs the producer's
    own bookkeeping only.
    """
    futures: list[asyncio.Future[Any] | BaseException] = []
    for r in records:
        try:
            futures.append(await producer.send(r.topic, r.value, key=r.key or None,
                                               headers=r.headers))  # fmt: skip
        except Exception as e:  # refused before sending (too large, closed): this record's error
            futures.append(e)
    out: list[BaseException | None] = []
    for f in futures:
        if isinstance(f, BaseException):
            out.append(f)
            continue
        try:
            await f
            out.append(None)
        except Exception as e:
            out.append(e)
    return out


async def holds_partition(
    consumer: AIOKafkaConsumer | None, tp: TopicPartition, offset: int
) -> bool:
    """Whether ``consumer`` holds ``tp`` in its group's current generation: the broker takes a
    commit of ``offset`` only from the partition's owner (pass an offset that skips nothing:
    one at or before the first record not done)."""
    if consumer is None:
        return False
    try:
        await consumer.commit({tp: offset})
    except KafkaError as e:  # CommitFailedError among them: the group moved on
        log.warning("partition_not_held", topic=tp.topic, partition=tp.partition,
                    error=type(e).__name__)  # fmt: skip
        return False
    return True


async def ensure_topics(
    settings: Settings, topics: tuple[str, ...] = ALL_TOPICS, timeout_s: float = 30.0
) -> None:
    """Create missing topics with the configured partition count; retry until reachable."""
    deadline = asyncio.get_running_loop().time() + timeout_s
    while True:
        admin = make_admin(settings)
        try:
            await admin.start()
            existing = set(await admin.list_topics())
            missing = [t for t in topics if t not in existing]
            if missing:
                configs = {"retention.ms": str(settings.topic_retention_ms)}
                new = [
                    NewTopic(
                        t,
                        settings.topic_partitions,
                        settings.topic_replication_factor,
                        topic_configs=configs,
                    )
                    for t in missing
                ]
                try:
                    answer = await admin.create_topics(new)
                except TopicAlreadyExistsError:
                    answer = None
                # Under Kafka ACLs a user sees (and may create) only its own topics: the others
                # come back as per-topic errors (TOPIC_AUTHORIZATION_FAILED), not as an exception
                # (36, TOPIC_ALREADY_EXISTS: another client was first).
                errors = getattr(answer, "topic_errors", ())
                refused = {e[0]: e[1] for e in errors if e[1] not in (0, 36)}
                if refused:
                    log.info("topics_not_created", errors=refused)
                log.info("topics_created", topics=[t for t in missing if t not in refused])
            return
        except KafkaConnectionError:
            if asyncio.get_running_loop().time() > deadline:
                raise
            await asyncio.sleep(0.5)
        finally:
            await admin.close()


def received_from(r: ConsumerRecord) -> Received:
    """The transport-neutral form of an aiokafka record (the one place that converts it)."""
    return Received(
        topic=r.topic,
        partition=r.partition,
        offset=r.offset,
        key=r.key,
        value=r.value,
        headers=tuple(r.headers or ()),
        timestamp_ms=r.timestamp,
    )
